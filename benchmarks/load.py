"""The end-to-end run's load generator, in a process of its own so that it competes with nothing it measures.

It publishes the demo's traffic upstream on a fixed clock: every 0.1 s, every event due by then is written
to the simulated approval system (its exchange database), one in a hundred defective, while a thread of its
own files 爱山东 applications at the gateway alongside. A tick that ran late is caught up by the next call, not
dropped, and the rate achieved is reported with what was published, for the harness to print beside every
figure.
"""

import multiprocessing
import queue
import threading
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
    filed: queue.Queue[tuple[int, list[str]] | None] = queue.Queue()
    applicant = _Applicant(f"http://127.0.0.1:{gateway_port}{APPLICATIONS_PATH}", filed)
    applicant.start()
    published_at: dict[int, datetime] = {}
    invalid = 0
    started = time.monotonic()
    tick = 0
    while len(published_at) < events:
        # The clock is absolute: each call publishes every event due by now, so a slow answer of the simulator
        # makes the next call larger instead of lowering the offered rate.
        time.sleep(max(0.0, started + tick * _TICK_S - time.monotonic()))
        tick += 1
        due_by_now = min(events, round((time.monotonic() - started) * rate_per_s))
        size = due_by_now - len(published_at)
        if size <= 0:
            continue
        # One event in a hundred is defective; the simulator rounds per call, so spread them over calls.
        defective = round((len(published_at) + size) * INVALID_SHARE) - invalid
        invalid += defective
        batch = approval.generate(size, invalid_rate=defective / size, unserved_rate=UNSERVED_SHARE)
        now = datetime.now(UTC)
        for event in batch:
            published_at[int(event["seq"])] = now
        filed.put((len(published_at), [str(e["xmdm"]) for e in batch]))
    elapsed = max(time.monotonic() - started, events / rate_per_s)
    filed.put(None)
    applicant.join()
    return Published(published_at, applicant.accepted, applicant.refused, len(published_at) / elapsed)


class _Applicant(threading.Thread):
    """Files the 爱山东 applications at the gateway beside the events, so that its answers never hold them up."""

    def __init__(self, url: str, filed: "queue.Queue[tuple[int, list[str]] | None]") -> None:
        super().__init__(name="bench-applicant", daemon=True)
        self._url = url
        self._filed = filed
        self.accepted: list[dict[str, Any]] = []
        self.refused = 0

    def run(self) -> None:
        """File one application per ten events published, some citing those events' projects."""
        while (work := self._filed.get()) is not None:
            published, codes = work
            count = max(1, round(len(codes) * APPLICATION_SHARE))
            start = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
            apps = make_applications(count, published, APPLICATION_REGIONS, project_codes=codes, start=start)
            results = push_applications(self._url, GATEWAY_SECRET, apps, charset="gbk")
            for app, result in zip(apps, results, strict=True):
                if result.status == _ACCEPTED:
                    self.accepted.append(app)
                else:
                    self.refused += 1
