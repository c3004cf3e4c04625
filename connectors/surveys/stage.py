"""The joint-survey stage (联合踏勘, 003): proposes one site survey to every utility of a project, and agrees it.

It reads the task-status topic (a task is open for a survey from the sink's RECEIVED of a pre-intervention or
application task until its utility reports SURVEYED or a later stage, or the task ends) and the utilities'
replies. When a project of a region whose policy enables joint surveys (``surveys.yaml``, off by default) has
open tasks of two utilities or more, and no task of it arrived for ``settle_s`` (the router writes a project's
tasks for every utility at once), the stage proposes the survey (:func:`routing.surveys.propose`) on the surveys
topic; :mod:`connectors.surveys.notices` sends it to every participant. Each reply moves it
(:func:`routing.surveys.apply_reply`): another round on a counter-proposal, AGREED when every utility accepted
the slot on the table, SEPARATE past the policy's rounds; each change is a new record on the surveys topic.

One survey per project and division (a project spanning two divisions has one in each, under each region's
policy): one already surveyed is not proposed again (a utility whose task comes later visits on its own).
The stage runs in one process at a time (leased); at start-up it reads the surveys topic
and the task-status topic from their start (:func:`catch_up`), so a restart neither forgets an open task nor
proposes a survey twice. A reply to an unknown survey, or from a utility not in it, is a ``DataError``.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered, Outcome, Output, each_record
from routing.calendar import CalendarError, WorkingCalendar
from routing.errors import DataError
from routing.records import TaskStatus
from routing.surveys import (
    OpenTask,
    Survey,
    SurveyPolicy,
    apply_reply,
    joint_groups,
    proposal_record,
    propose,
    reply_of,
    survey_of,
)
from schemas import Codec

log = structlog.get_logger(__name__)

STAGE: Final = "joint-surveys"
_SURVEYED_KINDS: Final = frozenset({"PRE_INTERVENTION", "APPLICATION"})
_PAST_SURVEY: Final = frozenset({"SURVEYED", "PLAN_CONFIRMED", "EXTERNAL_WORKS", "CONNECTED", "CLOSED", "REJECTED"})


Place = tuple[str, str]  # a project in one division (project code, region code): one survey each


@dataclass
class Project:
    """A project's open tasks in one division (task id → task), when the last one arrived, and its survey's id."""

    tasks: dict[str, OpenTask] = field(default_factory=dict)
    last_arrival: datetime | None = None
    survey_id: str | None = None


class JointSurveys:
    """Proposes and agrees joint surveys; a :class:`Processor` that ticks.

    Args:
        status_topic: The task-status topic.
        replies_topic: The utilities' replies.
        surveys_topic: Where each change of a survey goes (keyed by project code).
        policy: ``surveys.yaml``.
        calendar: The working calendar of the slots.
        settle_s: How long a project's tasks must stay unchanged before its survey is proposed.
        codec: The Avro codec.
        clock: Now (UTC).
    """

    stage = STAGE

    def __init__(
        self,
        *,
        status_topic: str,
        replies_topic: str,
        surveys_topic: str,
        policy: SurveyPolicy,
        calendar: WorkingCalendar,
        settle_s: float = 5.0,
        codec: Codec | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.input_topics = (status_topic, replies_topic)
        self._status_topic = status_topic
        self._surveys_topic = surveys_topic
        self._policy = policy
        self._calendar = calendar
        self._settle = timedelta(seconds=settle_s)
        self._codec = codec or Codec.default()
        self._clock = clock
        self._projects: dict[Place, Project] = {}
        self._project_of: dict[str, Place] = {}  # open task id → its project
        self._surveys: dict[str, Survey] = {}  # survey id → the survey as it stands

    def learn_status(self, status: TaskStatus) -> None:
        """Open or close a task for the surveys (at start-up, or in the loop); only regions with surveys count."""
        task, task_id = status["task"], status["task_id"]
        if status["stage"] == "RECEIVED" and task is not None:
            code = task["project_code"]
            wanted = task["kind"] in _SURVEYED_KINDS and self._policy.for_region(task["region_code"]).enabled
            if code and wanted and task["action"] != "CANCEL":
                place = (code, task["region_code"])
                project = self._projects.setdefault(place, Project())
                if task_id not in project.tasks and project.survey_id is None:
                    project.tasks[task_id] = OpenTask(task_id, status["utility_id"], code, task["region_code"])
                    project.last_arrival = self._clock()
                    self._project_of[task_id] = place
            elif task["action"] == "CANCEL":
                self._close(task_id)
        elif status["stage"] in _PAST_SURVEY:
            self._close(task_id)

    def learn_survey(self, record: dict[str, Any]) -> None:
        """Take a survey read back from the surveys topic (at start-up): its project is surveyed."""
        survey = survey_of(record)
        self._projects.setdefault((survey.project_code, survey.region_code), Project()).survey_id = survey.survey_id
        held = self._surveys.get(survey.survey_id)
        if held is None or survey.round >= held.round:
            self._surveys[survey.survey_id] = survey

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """Statuses open and close tasks; replies move their survey (a bad reply is a ``DataError``)."""
        yield from each_record(records, self._handle)

    def tick(self, now: datetime) -> Sequence[Output]:
        """Propose the survey of each project whose open tasks span utilities and have settled."""
        settled = [p for p in self._projects.values() if p.survey_id is None and _settled(p, now, self._settle)]
        outputs = []
        for group in joint_groups((t for p in settled for t in p.tasks.values()), self._policy):
            region = self._policy.for_region(group.region_code)
            try:
                survey = propose(group, region, self._calendar, now=now)
            except CalendarError as exc:
                log.warning("survey_not_proposed", stage=STAGE, project_code=group.project_code, reason=str(exc))
                continue
            project = self._projects[(group.project_code, group.region_code)]
            project.survey_id = survey.survey_id
            for task_id in project.tasks:
                self._project_of.pop(task_id, None)
            project.tasks.clear()  # surveyed: its tasks need no more following here
            self._surveys[survey.survey_id] = survey
            outputs.append(self._output(survey, proposed_by=None, at=now))
            log.info("survey_proposed", stage=STAGE, survey_id=survey.survey_id, utilities=sorted(survey.tasks))
        return outputs

    def close(self) -> None:
        """Nothing to release."""

    def _handle(self, record: ConsumerRecord) -> Delivered:
        if record.topic == self._status_topic:
            self.learn_status(self._codec.decode_as("TaskStatus", record.value))  # type: ignore[arg-type]
            return Delivered()
        answer = self._codec.decode_as("SurveyReply", record.value)
        reply = reply_of(answer)
        survey = self._surveys.get(answer["survey_id"])
        if survey is None:
            raise DataError("survey_id", "survey_id: no such survey")
        moved = apply_reply(survey, reply, self._policy.for_region(survey.region_code))
        if moved == survey:
            log.info("survey_reply_changed_nothing", stage=STAGE, survey_id=survey.survey_id, round=reply.round)
            return Delivered()
        self._surveys[moved.survey_id] = moved
        proposer = reply.utility_id if moved.round > survey.round else None
        log.info("survey_moved", stage=STAGE, survey_id=moved.survey_id, round=moved.round, state=moved.state)
        return Delivered(outputs=[self._output(moved, proposed_by=proposer, at=self._clock())])

    def _output(self, survey: Survey, *, proposed_by: str | None, at: datetime) -> Output:
        value = self._codec.encode("SurveyProposal", proposal_record(survey, proposed_by=proposed_by, at=at))
        return Output(self._surveys_topic, survey.project_code.encode(), value)

    def _close(self, task_id: str) -> None:
        """The task is no longer open; a project left with no open task and no survey is forgotten."""
        place = self._project_of.pop(task_id, None)
        project = None if place is None else self._projects.get(place)
        if place is None or project is None:
            return
        project.tasks.pop(task_id, None)
        if not project.tasks and project.survey_id is None:
            del self._projects[place]


def _settled(project: Project, now: datetime, settle: timedelta) -> bool:
    return len({t.utility_id for t in project.tasks.values()}) > 1 and (
        project.last_arrival is None or now - project.last_arrival >= settle
    )


def catch_up(stage: JointSurveys, *, surveys: Iterable[dict[str, Any]], statuses: Iterable[TaskStatus]) -> None:
    """Learn every survey proposed so far, then every task's status: a restart proposes nothing twice."""
    for record in surveys:
        stage.learn_survey(record)
    for status in statuses:
        stage.learn_status(status)
