"""Stage status records: what each process says of its stages, every few seconds, on a compacted topic.

The key is ``<host>:<pid>/<stage>``, so each process owns its own keys; a clean stop writes a tombstone for
each, and a process that died stops heartbeating: its entries are shown as stale (:func:`with_staleness`)
until the topic's retention removes them.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

StageState = Literal["starting", "running", "paused", "restarting", "failed", "stopped"]
Phase = Literal["starting", "running", "restarting", "stopped", "fatal"]


class StageStatus(BaseModel):
    """One stage in one process, as last published."""

    model_config = ConfigDict(frozen=True)

    stage: str
    host: str
    pid: int
    state: StageState
    last_error: str | None = None
    restarts: int = 0
    records_in: float = 0.0
    records_out: float = 0.0
    lag: float | None = None
    heartbeat_at: datetime


class StageView(StageStatus):
    """A published status as the admin API shows it: ``stale`` when its heartbeat is too old."""

    stale: bool


def status_key(host: str, pid: int, stage: str) -> bytes:
    """The compacted-topic key of one stage in one process."""
    return f"{host}:{pid}/{stage}".encode()


def state_of(phase: Phase, *, paused: bool) -> StageState:
    """The state shown for a supervisor's phase; a running stage the control topic pauses is ``paused``."""
    if phase == "fatal":
        return "failed"
    if phase == "running" and paused:
        return "paused"
    return phase


def with_staleness(statuses: Iterable[StageStatus], *, now: datetime, stale_after: timedelta) -> list[StageView]:
    """Every status marked stale or not, ordered by stage, then host and pid."""
    views = [StageView(**s.model_dump(), stale=now - s.heartbeat_at > stale_after) for s in statuses]
    return sorted(views, key=lambda v: (v.stage, v.host, v.pid))
