"""Typed views of the Avro records in ``schemas/``; fastavro reads and writes these dicts as they are.

Timestamps are timezone-aware UTC ``datetime`` objects (fastavro's ``timestamp-millis`` mapping).
Field meanings are documented once, in the ``.avsc`` files.
"""

from datetime import datetime
from typing import Literal, TypedDict

# a configured service code (routing/services.py): checked against deploy/config/services.yaml at the edges
Service = str
ItemStatus = Literal["RECEIVED", "IN_PROGRESS", "GRANTED", "REFUSED"]
TaskKind = Literal["PRE_INTERVENTION", "CONSTRUCTION_READY", "CONNECT", "APPLICATION", "COMPLAINT"]
TaskAction = Literal["CREATE", "UPDATE", "CANCEL"]
TaskStage = Literal[
    "RECEIVED",
    "CONTACTED",
    "SURVEYED",
    "PLAN_CONFIRMED",
    "EXTERNAL_WORKS",
    "CONNECTED",
    "CLOSED",
    "REJECTED",
    "VERIFIED",
    "HANDLED",
    "ANSWERED",
]
ApplicationKind = Literal["CONNECTION", "REPAIR", "SUSPENSION", "TRANSFER"]
ApplicantType = Literal["PERSON", "ENTERPRISE", "SOLE_PROPRIETOR", "PUBLIC_SERVICE"]
UserCategory = Literal["ENTERPRISE", "INDIVIDUAL_BUSINESS", "RESIDENT", "PUBLIC_SERVICE"]
SlaEventKind = Literal["WARNING", "BREACHED", "MET", "REJECTED", "CANCELLED"]


class Demand(TypedDict):
    """ubridge.v1.Demand."""

    service: Service
    pipe_diameter_mm: int | None
    load: float | None
    load_unit: str | None
    heated_area_m2: float | None


class Document(TypedDict):
    """ubridge.v1.Document."""

    kind: str
    number: str | None
    title: str
    url: str | None
    digest: str | None


class Repair(TypedDict):
    """One value read in a way other than as written: the canonical field, the kind of repair, what was assumed."""

    field: str
    kind: str
    detail: str


class ProjectEvent(TypedDict):
    """ubridge.v1.ProjectEvent."""

    event_id: str
    source: str
    source_record_id: str
    project_code: str
    project_name: str
    region_code: str
    site_address: str
    builder_name: str
    builder_uscc: str | None
    contact_name: str | None
    contact_mobile: str | None
    stage: int
    item_code: str | None
    item_instance_code: str | None
    item_name: str | None
    item_status: ItemStatus
    retraction: bool
    occurred_at: datetime
    ingested_at: datetime
    time_zone: str
    project_nature: str | None
    floor_area_m2: float | None
    land_area_m2: float | None
    investment_10k_cny: float | None
    demands: list[Demand]
    documents: list[Document]
    flags: list[str]
    repairs: list[Repair]


class UtilityTask(TypedDict):
    """ubridge.v1.UtilityTask."""

    task_id: str
    kind: TaskKind
    action: TaskAction
    utility_id: str
    service: Service
    demand: Demand | None
    project_code: str | None
    project_name: str | None
    region_code: str
    site_address: str
    builder_name: str | None
    builder_uscc: str | None
    contact_name: str | None
    contact_mobile: str | None
    project_nature: str | None
    floor_area_m2: float | None
    land_area_m2: float | None
    trigger_stage: int | None
    documents: list[Document]
    missing_materials: list[str]
    application_id: str | None
    source: str
    source_event_id: str
    occurred_at: datetime
    ingested_at: datetime
    created_at: datetime
    contact_due: datetime | None
    contact_due_note: str | None
    flags: list[str]
    application_filed_at: datetime | None
    application_kind: ApplicationKind | None
    permit_granted_at: datetime | None
    revision: int
    materials_to_fetch: list[str]
    dropped_materials: list[str]
    user_category: UserCategory | None
    work_order_id: str | None
    answer_due: datetime | None
    complaint: str | None


class TaskStatus(TypedDict):
    """ubridge.v1.TaskStatus."""

    task_id: str
    utility_id: str
    application_id: str | None
    stage: TaskStage
    occurred_at: datetime
    reported_at: datetime
    pipe_length_m: float | None
    reason: str | None
    detail: str | None
    reporter: str
    task: UtilityTask | None


class ConnectionApplication(TypedDict):
    """ubridge.v1.ConnectionApplication."""

    application_id: str
    kind: ApplicationKind
    services: list[Service]
    applicant_type: ApplicantType
    applicant_name: str
    applicant_id_number: str | None
    applicant_uscc: str | None
    applicant_mobile: str
    project_code: str | None
    region_code: str
    site_address: str
    materials: list[Document]
    note: str | None
    filed_at: datetime
    ingested_at: datetime
    time_zone: str
    dropped_materials: list[str]
    user_category: UserCategory | None


class SlaEvent(TypedDict):
    """ubridge.v1.SlaEvent."""

    event_id: str
    task_id: str
    utility_id: str
    application_id: str | None
    kind: SlaEventKind
    rule: str
    policy_id: str
    policy_source: str
    region_code: str
    scenario: str
    limit_working_hours: float
    elapsed_working_hours: float
    started_at: datetime
    due_at: datetime
    occurred_at: datetime
    emitted_at: datetime
    time_zone: str
    provisional_calendar: bool
    rule_id: str
    unit: str
    start_event: str


class StageSpan(TypedDict):
    """ubridge.v1.StageSpan."""

    stage: TaskStage
    started_at: datetime
    ended_at: datetime | None
    elapsed_working_hours: float | None


class TaskLedgerEntry(TypedDict):
    """ubridge.v1.TaskLedgerEntry."""

    task_id: str
    utility_id: str
    application_id: str | None
    kind: TaskKind
    service: Service
    region_code: str
    created_at: datetime
    scenario: str
    pipe_length_m: float | None
    stage: TaskStage | None
    closed: bool
    rejected_reason: str | None
    stages: list[StageSpan]
    emitted: list[str]
    updated_at: datetime
    unclocked_reason: str | None
    application_filed_at: datetime | None
    application_kind: ApplicationKind | None
    permit_granted_at: datetime | None
    cancelled_at: datetime | None
    user_category: UserCategory | None


ComplaintVisitResult = Literal["SATISFIED", "BASICALLY_SATISFIED", "UNSATISFIED", "UNREACHABLE"]
ClearingReason = Literal["UNSATISFIED", "ANSWER_OVERDUE"]
ClosedHow = Literal["SATISFIED_VISIT", "DEPARTMENT_CLOSE"]
EscalationReason = Literal["VERIFY_OVERDUE", "ANSWER_OVERDUE", "CLEARING_OVERDUE"]


class ComplaintVisit(TypedDict):
    """ubridge.v1.ComplaintVisit."""

    visit_id: str
    result: ComplaintVisitResult
    visited_at: datetime


class ComplaintLedgerEntry(TypedDict):
    """ubridge.v1.ComplaintLedgerEntry."""

    order_id: str
    task_id: str
    utility_id: str
    region_code: str
    service: Service
    dispatched_at: datetime
    received_at: datetime
    verify_due: datetime
    answer_due: datetime
    answer_due_from: str
    verified_at: datetime | None
    handled_at: datetime | None
    answered_at: datetime | None
    answer_sent_for: datetime | None
    visits: list[ComplaintVisit]
    on_clearing_ledger: bool
    clearing_reason: ClearingReason | None
    clearing_since: datetime | None
    clearing_due: datetime | None
    closed_at: datetime | None
    closed_how: ClosedHow | None
    close_reason: str | None
    closed_by: str | None
    escalations: list[str]
    updated_at: datetime


class Escalation(TypedDict):
    """ubridge.v1.Escalation."""

    escalation_id: str
    order_id: str
    task_id: str
    utility_id: str
    region_code: str
    service: Service
    reason: EscalationReason
    due: datetime
    raised_at: datetime
    policy_source: str


class ComplaintClose(TypedDict):
    """ubridge.v1.ComplaintClose."""

    order_id: str
    reason: str
    closed_by: str
    closed_at: datetime
