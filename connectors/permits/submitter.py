"""The permit submitter: ``ubridge.permits.v1`` → every department concerned, at once (并联审批).

Each ``PermitApplication`` is split into its filings (:func:`routing.permits.filings`): a permit goes to its
department through the approval system's interface, ``POST {approval}/api/v1/permits`` with the permit id as its
``Idempotency-Key`` and in the body, all of an application's permits concurrently; a planning permit the
region's short-pipe rule exempts is recorded as 告知承诺 (``COMMITTED``) without a request. Each filing becomes a
``PermitStatus`` on the permit-status topic (``SUBMITTED`` with the department's deadline in working days, or
``COMMITTED``), which the follower (:mod:`connectors.permits.follower`) takes from there.

A permit is published once: the submitter knows the permits already on the status topic (read at start-up,
then every one it publishes), and a resent application, or one replayed after a crash, files only the permits
it does not know; so the topic never shows a submission after the department's answer. A permit posted but not
yet published when the process died is posted again (the approval system answers a repeat with the permit it
has) and published then.

Posts are retried a bounded number of times (:mod:`connectors.payments.client`'s rules: 408, 429, 5xx and
transport errors with backoff; any other 4xx is final). An application one of whose departments refuses the
filing, or stays unreachable, is dead-lettered with the reason and the others go on; the approval system takes
a permit once per id, so a replay from the dead-letter topic files nothing twice.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final, cast

import structlog
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered, Outcome, Output, outcome_of
from connectors.runtime.metrics import Metrics
from connectors.runtime.peer_post import PeerPoster
from routing.calendar import WorkingCalendar
from routing.errors import DataError
from routing.permits import (
    Filing,
    PermitApplication,
    PermitPolicy,
    PermitState,
    PermitStatus,
    decision_due,
    filings,
)
from routing.records import TaskStatus
from schemas import Codec

log = structlog.get_logger(__name__)

STAGE: Final = "permit-submitter"
SUBMIT_PATH: Final = "/api/v1/permits"
COMMITMENT: Final = "commitment"  # the department label of a 告知承诺 record in metrics


def _now() -> datetime:
    return datetime.now(UTC)


class PermitSubmitter:
    """Files each application's permits with their departments; a :class:`Processor`.

    Args:
        input_topic: The permits topic.
        status_topic: The permit-status topic.
        approval_url: The approval system's base URL.
        poster: Posts to the approval system (its token, bounded retries).
        policy: deploy/config/permits.yaml.
        calendar: The working calendar of the departments' deadlines.
        metrics: Process metrics.
        task_status_topic: Where the task's EXTERNAL_WORKS report goes (the task-status topic; None: nowhere).
        published: The permit ids already on the status topic (:func:`connectors.permits.follower.read_statuses`).
        clock: The submission instant (UTC).
    """

    stage = STAGE

    def __init__(
        self,
        *,
        input_topic: str,
        status_topic: str,
        approval_url: str,
        poster: PeerPoster,
        policy: PermitPolicy,
        calendar: WorkingCalendar,
        metrics: Metrics,
        task_status_topic: str | None = None,
        published: Iterable[str] = (),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.input_topics = (input_topic,)
        self._status_topic = status_topic
        self._url = approval_url.rstrip("/") + SUBMIT_PATH
        self._poster = poster
        self._policy = policy
        self._calendar = calendar
        self._metrics = metrics
        self._task_status_topic = task_status_topic
        self._clock = clock
        self._published = set(published)
        self._codec = Codec.default()
        self._pool = ThreadPoolExecutor(max_workers=len(policy.departments), thread_name_prefix=STAGE)

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """File each application; an application that cannot be filed is a ``DataError`` for the DLQ."""
        for record in records:
            yield outcome_of(self._file, record)

    def close(self) -> None:
        """Stop the workers and close the HTTP client."""
        self._pool.shutdown(wait=True)
        self._poster.close()

    def _file(self, record: ConsumerRecord) -> Delivered:
        application = cast("PermitApplication", self._codec.decode_as("PermitApplication", record.value))
        now = self._clock()
        new = [f for f in filings(application, self._policy) if f.permit_id not in self._published]
        futures = [self._pool.submit(self._one, application, filing, now) for filing in new]
        statuses = [future.result() for future in futures]  # a DataError of any department fails the record
        self._published.update(f.permit_id for f in new)
        key = application["application_id"].encode()
        outputs = [Output(self._status_topic, key, self._codec.encode("PermitStatus", dict(s))) for s in statuses]
        if self._task_status_topic is not None and any(s["state"] == "SUBMITTED" for s in statuses):
            report = external_works(application, now)
            value = self._codec.encode("TaskStatus", dict(report))
            outputs.append(Output(self._task_status_topic, application["task_id"].encode(), value))
        for status in statuses:
            label = COMMITMENT if status["state"] == "COMMITTED" else status["department"]
            self._metrics.permits_filed.labels(label).inc()
        log.info(
            "permits_filed",
            stage=STAGE,
            application_id=application["application_id"],
            permits=len(statuses),
            already_filed=len(filings(application, self._policy)) - len(new),
        )
        return Delivered(outputs=outputs)

    def _one(self, application: PermitApplication, filing: Filing, now: datetime) -> PermitStatus:
        """The status of one filing: recorded as 告知承诺, or submitted to its department."""
        rule = self._policy.rule_named(application["rule_id"])
        if filing.commitment:
            return _status(application, filing, "COMMITTED", now, reference=None, due=None)
        body: dict[str, Any] = {
            "permit_id": filing.permit_id,
            "department": filing.department.code,
            "kind": filing.kind,
            "project_code": application["project_code"],
            "utility_id": application["utility_id"],
            "task_id": application["task_id"],
            "pipe_length_m": application["pipe_length_m"],
            "route": application["route"],
        }
        try:
            answer = self._poster.post(self._url, body, key=filing.permit_id)
        except DataError as exc:
            raise DataError("kinds", f"{filing.kind} to {filing.department.code}: {exc}") from exc
        reference = answer.get("reference")
        due = decision_due(now, rule=rule, calendar=self._calendar, now=now)
        return _status(application, filing, "SUBMITTED", now, reference=str(reference) if reference else None, due=due)


def external_works(application: PermitApplication, now: datetime) -> TaskStatus:
    """The task's EXTERNAL_WORKS report, dated when the utility filed its permits.

    The ledger clocks a task's external works out of the utility's limit where the seed does (004: "不含工程设计、
    施工和专营企业不可控的时间", sla-policies.yaml ``clocked_as: EXTERNAL_WORKS``); the departments' time is such time,
    so filing a permit with a department starts that span if the utility has not reported it yet (the ledger
    keeps each stage's earliest time, so an earlier report of the utility's own stands).
    """
    return {
        "task_id": application["task_id"],
        "utility_id": application["utility_id"],
        "application_id": None,
        "stage": "EXTERNAL_WORKS",
        "occurred_at": application["filed_at"],
        "reported_at": now,
        "pipe_length_m": application["pipe_length_m"],
        "reason": None,
        "detail": f"permits filed: {', '.join(application['kinds'])}",
        "reporter": STAGE,
        "task": None,
    }


def _status(
    application: PermitApplication,
    filing: Filing,
    state: PermitState,
    now: datetime,
    *,
    reference: str | None,
    due: datetime | None,
) -> PermitStatus:
    return {
        "permit_id": filing.permit_id,
        "application_id": application["application_id"],
        "utility_id": application["utility_id"],
        "task_id": application["task_id"],
        "project_code": application["project_code"],
        "kind": filing.kind,
        "department": filing.department.code,
        "state": state,
        "reason": None,
        "reference": reference,
        "rule_id": application["rule_id"],
        "due_at": due,
        "occurred_at": now,
        "reported_at": now,
        "working_hours": None,
    }
