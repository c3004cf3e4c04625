"""The permit follower: each department's decision, read back from the approval system, onto the status topic.

It reads the permit-status topic (the submitter's ``SUBMITTED``, and its own later statuses), keeps every
permit not decided yet, and on each tick (at most every ``poll_interval_s``) asks the approval system where each
stands: ``GET {approval}/api/v1/permits/status?permit_id=…``. A state the department moved to becomes a new
``PermitStatus`` (the department's reason with a 补正 or a refusal), its deadline recomputed with the 补正 waits
left out (:func:`routing.permits.decision_due`) and the department's working hours so far: the clock of
"3个工作日内办结", which ``ubridge_permit_decisions_total{on_time}`` counts at each decision. A move the
rules refuse (a decided permit changing its mind) is logged and not published. The approval system unreachable,
or answering an error, is logged and asked again on the next tick: a read never loses anything.

``ubridge_permits_overdue`` counts, per department, the permits undecided past their deadline (001:
"3个工作日内办结"). The state is rebuilt at start-up from the topic (:func:`catch_up`).
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, cast

import httpx
import structlog
from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from pydantic import SecretStr

from connectors.runtime.compacted import decoded_to_end
from connectors.runtime.interface import Delivered, Outcome, Output, each_record
from connectors.runtime.metrics import Metrics
from routing.calendar import WorkingCalendar
from routing.errors import DataError
from routing.permits import (
    DECIDED,
    PermitPolicy,
    PermitState,
    PermitStatus,
    advance,
    decision_due,
    overdue,
    working_hours_taken,
)
from schemas import Codec

log = structlog.get_logger(__name__)

STAGE: Final = "permit-follower"
STATUS_PATH: Final = "/api/v1/permits/status"
_FOLLOWED: Final = frozenset({"ACCEPTED", "MORE_REQUIRED", "GRANTED", "REFUSED"})


@dataclass
class Followed:
    """A permit being followed: its last status, when it was submitted, and its 补正 waits so far."""

    status: PermitStatus
    submitted_at: datetime
    waits: list[tuple[datetime, datetime | None]] = field(default_factory=list)


class PermitFollower:
    """Follows every undecided permit at the approval system; a :class:`Processor` that ticks.

    Args:
        status_topic: The permit-status topic, read and written.
        approval_url: The approval system's base URL.
        token: Its bearer token.
        policy: deploy/config/permits.yaml (the regions' rules, by the permit's rule).
        calendar: The working calendar of the deadlines.
        metrics: Process metrics.
        poll_interval_s: Least time between two reads of the approval system.
        timeout_s: Per request.
        clock: Now (UTC).
        transport: Swap point for tests.
    """

    stage = STAGE

    def __init__(
        self,
        *,
        status_topic: str,
        approval_url: str,
        token: SecretStr,
        policy: PermitPolicy,
        calendar: WorkingCalendar,
        metrics: Metrics,
        poll_interval_s: float = 5.0,
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.input_topics = (status_topic,)
        self._topic = status_topic
        self._url = approval_url.rstrip("/") + STATUS_PATH
        self._policy = policy
        self._calendar = calendar
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._clock = clock
        self._codec = Codec.default()
        self._permits: dict[str, Followed] = {}
        self._next_poll: datetime | None = None
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {token.get_secret_value()}"}, timeout=timeout_s, transport=transport
        )

    def learn(self, statuses: Iterable[PermitStatus]) -> None:
        """Take statuses read from the topic (at start-up, or in the loop) into the followed permits.

        A status is taken only when it is a move by the rules (:func:`routing.permits.advance`): the topic is
        at least once, so a repeat, or a submission replayed after the department had moved, changes nothing.
        """
        for status in statuses:
            followed = self._permits.get(status["permit_id"])
            if followed is None:
                self._permits[status["permit_id"]] = Followed(status, status["occurred_at"])
                continue
            current = followed.status["state"]
            try:
                moved = advance(current, status["state"])
            except DataError:
                moved = False
            if moved:
                _track_wait(followed, current, status["state"], status["occurred_at"])
                followed.status = status

    def followed(self) -> list[Followed]:
        """Every permit known, decided or not, in the order first seen."""
        return list(self._permits.values())

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """Learn the statuses read; a record that is not a ``PermitStatus`` is a ``DataError``."""
        yield from each_record(records, self._read)

    def tick(self, now: datetime) -> Sequence[Output]:
        """Ask the approval system about every undecided permit, at most every ``poll_interval_s``."""
        if self._next_poll is not None and now < self._next_poll:
            return ()
        self._next_poll = now + timedelta(seconds=self._poll_interval_s)
        outputs: list[Output] = []
        for followed in list(self._permits.values()):
            if followed.status["state"] not in DECIDED:
                moved = self._ask(followed)
                if moved is not None:
                    outputs.append(Output(self._topic, moved["application_id"].encode(), self._encode(moved)))
        self._count_overdue(now)
        return outputs

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _read(self, record: ConsumerRecord) -> Delivered:
        self.learn([cast("PermitStatus", self._codec.decode_as("PermitStatus", record.value))])
        return Delivered()

    def _encode(self, status: PermitStatus) -> bytes:
        return self._codec.encode("PermitStatus", dict(status))

    def _ask(self, followed: Followed) -> PermitStatus | None:
        """The permit's new status when its department moved it; None when it did not, or cannot be asked now."""
        permit = followed.status["permit_id"]
        answer = self._department_says(permit)
        if answer is None:
            return None
        new, reason = answer
        current = followed.status["state"]
        try:
            if not advance(current, new):
                return None
        except DataError as exc:
            log.warning("permit_move_refused", stage=STAGE, permit_id=permit, reason=str(exc))
            return None
        now = self._clock()
        _track_wait(followed, current, new, now)
        rule = self._policy.rule_named(followed.status["rule_id"])
        due = decision_due(followed.submitted_at, rule=rule, calendar=self._calendar, waits=followed.waits, now=now)
        taken = working_hours_taken(followed.submitted_at, calendar=self._calendar, waits=followed.waits, at=now)
        status = _changed(
            followed.status, state=new, reason=reason, due_at=due, occurred_at=now, reported_at=now, working_hours=taken
        )
        if new in DECIDED:
            on_time = "none" if due is None else "yes" if now <= due else "no"
            self._metrics.permit_decisions.labels(status["department"], on_time).inc()
        followed.status = status
        self._metrics.permit_states.labels(status["department"], new).inc()
        log.info("permit_moved", stage=STAGE, permit_id=permit, state=new, department=status["department"])
        return status

    def _department_says(self, permit: str) -> tuple[PermitState, str | None] | None:
        """The state and reason the approval system gives ``permit``; None when it cannot tell now."""
        try:
            response = self._client.get(self._url, params={"permit_id": permit})
            response.raise_for_status()
            answer = response.json()
            state, reason = answer["state"], answer.get("reason")
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("permit_status_unavailable", stage=STAGE, permit_id=permit, error=type(exc).__name__)
            return None
        if state not in _FOLLOWED:
            return None
        return cast("PermitState", state), None if reason is None else str(reason)[:500]

    def _count_overdue(self, now: datetime) -> None:
        counts: dict[str, int] = dict.fromkeys({d.code for d in self._policy.departments.values()}, 0)
        for followed in self._permits.values():
            if overdue(followed.status, now):
                counts[followed.status["department"]] = counts.get(followed.status["department"], 0) + 1
        for department, count in counts.items():
            self._metrics.permits_overdue.labels(department).set(count)


def _changed(status: PermitStatus, **changes: object) -> PermitStatus:
    return cast("PermitStatus", {**status, **changes})


def _track_wait(followed: Followed, current: PermitState, new: PermitState, at: datetime) -> None:
    """Open a 补正 wait when the permit enters MORE_REQUIRED, close it when it leaves."""
    if new == "MORE_REQUIRED" and current != "MORE_REQUIRED":
        followed.waits.append((at, None))
    elif current == "MORE_REQUIRED" and followed.waits and followed.waits[-1][1] is None:
        followed.waits[-1] = (followed.waits[-1][0], at)


def read_statuses(consumer: KafkaConsumer, topic: str) -> Iterator[PermitStatus]:
    """Every status on the permit-status topic, from its start to its end now (the consumer has no group)."""
    return cast("Iterator[PermitStatus]", decoded_to_end(consumer, topic, "PermitStatus", Codec.default()))


def catch_up(consumer: KafkaConsumer, topic: str, follower: PermitFollower) -> None:
    """Read the whole permit-status topic into ``follower`` (the consumer is unsubscribed, without a group)."""
    follower.learn(read_statuses(consumer, topic))
