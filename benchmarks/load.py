"""The end-to-end run's load generator, in a process of its own so that it competes with nothing it measures.

It publishes the demo's traffic upstream on a fixed clock: every 0.1 s, a tenth of a second's events are
written to the simulated approval system (its exchange database), one in a hundred defective, with 爱山东
applications filed at the gateway alongside. A tick that ran late is caught up at once, not dropped, and the
rate it achieved is reported with what it published, for the harness to print beside every figure.
"""

import multiprocessing
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.demo.remote import RemoteApproval
from connectors.demo.runner import (
    APPLICATION_REGIONS,
    APPLICATION_SHARE,
    GATEWAY_SECRET,
    INVALID_SHARE,
    UNSERVED_SHARE,
)
from routing.calendar import SHANGHAI
from simulators.aishandong import APPLICATIONS_PATH, make_applications, push_applications

_TICK_S = 0.1
_ACCEPTED = 202


@dataclass(frozen=True)
class Published:
    """What the generator published: each event's time by its ``seq``, the applications accepted, the rate."""

    published_at: dict[int, datetime]
    applications: list[dict[str, Any]]
    refused: int
    achieved_per_s: float


def generate(approval_url: str, gateway_port: int, *, rate_per_s: float, events: int) -> Published:
    """Run the generator in a child process (spawned: nothing of the caller's state) and return its account."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: Published = pool.apply(_publish, (approval_url, gateway_port, rate_per_s, events))
    return result


def _publish(approval_url: str, gateway_port: int, rate_per_s: float, events: int) -> Published:
    approval = RemoteApproval(approval_url)
    gateway = f"http://127.0.0.1:{gateway_port}{APPLICATIONS_PATH}"
    chunk = max(1, round(rate_per_s * _TICK_S))
    published_at: dict[int, datetime] = {}
    applications: list[dict[str, Any]] = []
    refused = 0
    invalid = 0
    started = time.monotonic()
    tick = 0
    while len(published_at) < events:
        # The clock is absolute: a late tick is followed at once by the next, so the offered rate holds.
        time.sleep(max(0.0, started + tick * _TICK_S - time.monotonic()))
        tick += 1
        size = min(chunk, events - len(published_at))
        # One event in a hundred is defective; the simulator rounds per call, so spread them over chunks.
        due = round((len(published_at) + size) * INVALID_SHARE) - invalid
        invalid += due
        batch = approval.generate(size, invalid_rate=due / size, unserved_rate=UNSERVED_SHARE)
        now = datetime.now(UTC)
        for event in batch:
            published_at[int(event["seq"])] = now
        codes = [str(e["xmdm"]) for e in batch]
        count = max(1, round(len(codes) * APPLICATION_SHARE))
        start = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
        apps = make_applications(count, len(published_at), APPLICATION_REGIONS, project_codes=codes, start=start)
        for app, result in zip(apps, push_applications(gateway, GATEWAY_SECRET, apps, charset="gbk"), strict=True):
            if result.status == _ACCEPTED:
                applications.append(app)
            else:
                refused += 1
    elapsed = max(time.monotonic() - started, tick * _TICK_S)
    return Published(published_at, applications, refused, len(published_at) / elapsed)
