"""The least-privilege ACLs of a configuration, as pure functions of it.

:func:`stage_needs` says, for every stage the configuration runs, what it does on the cluster, following the
wiring of :mod:`connectors.registry`: the topics it consumes (Read, Describe), those it produces to (Write,
Describe), its consumer groups (Read), its transactional ids (Write, Describe); every producer is idempotent
(IdempotentWrite on the cluster). Every stage also follows the control topic and publishes its status, as
every ``ubridge run`` process does. :func:`plan` turns that into the ACLs of each principal
(:class:`~connectors.acl.settings.AclSettings`): a sink runs as its utility's principal, which may read its own
task topic and no other. Everything is granted by literal name, never by prefix, so a principal reaches
nothing that is not named here.

Example:
    >>> for acl in plan(settings): print(acl.principal, acl.resource, acl.name, acl.operation)
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

from connectors.aishandong.router import STAGE as APPLICATION_ROUTER
from connectors.complaints.stage import STAGE as COMPLAINTS
from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.gonggai.spgl_normaliser import SpglNormaliser
from connectors.hotline.router import HotlineRouter
from connectors.ledger.stage import TaskLedger
from connectors.payments.stage import STAGE as PAYMENTS
from connectors.permits.follower import STAGE as PERMIT_FOLLOWER
from connectors.permits.intake import STAGE as PERMIT_INTAKE
from connectors.permits.notices import STAGE as PERMIT_NOTICES
from connectors.permits.submitter import STAGE as PERMIT_SUBMITTER
from connectors.router.project_table import ProjectTableWriter
from connectors.router.stage import ProjectRouter
from connectors.settings import Settings
from connectors.status.callback import STAGE as STATUS_CALLBACKS
from connectors.status.poller import stage_name as poll_stage
from connectors.supervision.stage import STAGE as SUPERVISION
from connectors.surveys.intake import STAGE as SURVEY_REPLIES
from connectors.surveys.notices import STAGE as SURVEY_NOTICES
from connectors.surveys.stage import STAGE as JOINT_SURVEYS
from connectors.utility.sink import stage_name as sink_stage

Resource = Literal["TOPIC", "GROUP", "TRANSACTIONAL_ID", "CLUSTER"]
Operation = Literal["READ", "WRITE", "DESCRIBE", "IDEMPOTENT_WRITE"]
CLUSTER: Final = "kafka-cluster"  # the one name the cluster resource has


class AclError(ValueError):
    """The ``acl`` section cannot be planned; the message names the key."""


@dataclass(frozen=True)
class Needs:
    """What one stage does on the cluster (topic, group and transactional-id names with the prefix)."""

    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    transactional_ids: frozenset[str] = frozenset()


class Acl(NamedTuple):
    """One ALLOW ACL, for any host, on a literal resource name."""

    principal: str
    resource: Resource
    name: str
    operation: Operation


@dataclass
class _Builder:
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    transactional_ids: set[str] = field(default_factory=set)

    def done(self) -> Needs:
        return Needs(
            frozenset(self.reads), frozenset(self.writes), frozenset(self.groups), frozenset(self.transactional_ids)
        )


class _Wiring:
    """Collects the stages' needs the way :mod:`connectors.registry` wires them."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.needs: dict[str, _Builder] = {}

    def stage(self, name: str, *, reads: Iterable[str] = (), writes: Iterable[str] = (), dlq: bool = True) -> _Builder:
        built = _Builder(set(reads), set(writes))
        # every process follows the pauses and restarts of the control topic and publishes its stages' status
        built.reads.add(self.s.topic("control"))
        built.writes.add(self.s.topic("stage_status"))
        if dlq:
            built.writes.add(self.s.dlq_topic(name))
        self.needs[name] = built
        return built

    def loop(self, name: str, *, reads: Iterable[str], writes: Iterable[str]) -> _Builder:
        built = self.stage(name, reads=reads, writes=writes)
        built.groups.add(f"{self.s.kafka.topic_prefix}ubridge.{name}")
        return built

    def leased_loop(self, name: str, *, reads: Iterable[str], writes: Iterable[str]) -> None:
        # one process runs it at a time (registry._leased), as it holds state over every partition
        self._lease(name, self.loop(name, reads=reads, writes=writes))

    def source(self, name: str, *, writes: Iterable[str]) -> None:
        # leased (connectors/runtime/lease.py), its cursor on the offsets topic, written in its transactions
        offsets = self.s.topic("source_offsets")
        built = self.stage(name, reads=[offsets], writes=(*writes, offsets))
        self._lease(name, built)
        built.transactional_ids.add(f"{self.s.kafka.topic_prefix}ubridge-source-{name}")

    def _lease(self, name: str, built: _Builder) -> None:
        built.reads.add(self.s.topic("coordination"))
        built.groups.add(f"{self.s.kafka.topic_prefix}ubridge.lease.{name}")


def stage_needs(settings: Settings) -> dict[str, Needs]:
    """Every configured stage → what it does on the cluster, in :func:`connectors.registry.stage_specs` order."""
    wiring = _Wiring(settings)
    _sources(wiring)
    _hotline(wiring)
    _routing(wiring)
    _delivery(wiring)
    _permits(wiring)
    _surveys(wiring)
    _statuses(wiring)
    _complaints(wiring)
    _supervision(wiring)
    return {name: built.done() for name, built in wiring.needs.items()}


def _sources(w: _Wiring) -> None:
    s, sources = w.s, w.s.sources
    if sources.gonggai_interface is not None and sources.gonggai_interface.enabled:
        w.source(sources.gonggai_interface.name, writes=[s.topic("raw_gonggai")])
    if sources.gonggai_spgl is not None and sources.gonggai_spgl.enabled:
        w.source(sources.gonggai_spgl.name, writes=[s.topic("raw_gonggai_spgl")])
        w.loop(SpglNormaliser.stage, reads=[s.topic("raw_gonggai_spgl")], writes=[s.topic("project_events")])
    signatures = s.topic("push_signatures")
    if sources.gonggai_webhook is not None and sources.gonggai_webhook.enabled:
        raw = [s.topic("raw_gonggai"), signatures]
        w.stage(sources.gonggai_webhook.name, reads=[signatures], writes=raw, dlq=False)
    if sources.aishandong_gateway is not None:
        applications = [s.topic("applications"), signatures]
        w.stage(sources.aishandong_gateway.name, reads=[signatures], writes=applications, dlq=False)
    if sources.aishandong_pull is not None and sources.aishandong_pull.enabled:
        w.source(sources.aishandong_pull.name, writes=[s.topic("applications")])


def _hotline(w: _Wiring) -> None:
    s, hotline = w.s, w.s.hotline
    if hotline is None:
        return
    orders = [s.topic("hotline_work_orders"), s.topic("hotline_return_visits")]
    if hotline.push is not None:
        signatures = s.topic("push_signatures")
        w.stage(hotline.push.name, reads=[signatures], writes=[*orders, signatures], dlq=False)
    if hotline.pull is not None and hotline.pull.enabled:
        w.source(hotline.pull.name, writes=orders)
    if hotline.route:
        tasks = [s.task_topic(u.id) for u in s.utilities]
        w.loop(HotlineRouter.stage, reads=[s.topic("hotline_work_orders")], writes=tasks)


def _routing(w: _Wiring) -> None:
    s = w.s
    tasks = [s.task_topic(u.id) for u in s.utilities]
    w.loop(GonggaiNormaliser.stage, reads=[s.topic("raw_gonggai")], writes=[s.topic("project_events")])
    grants = s.topic("router_grants")
    w.loop(ProjectRouter.stage, reads=[s.topic("project_events"), grants], writes=[*tasks, grants])
    if s.applications is not None and s.applications.enabled:
        # it reads its own table back on assignment, to rewrite records an earlier version left a contact in
        table = s.topic("projects")
        w.loop(ProjectTableWriter.stage, reads=[s.topic("project_events"), table], writes=[table])
        awaiting = s.topic("applications_awaiting")
        reads = [s.topic("applications"), s.topic("projects"), awaiting]
        w.loop(APPLICATION_ROUTER, reads=reads, writes=[*tasks, awaiting])


def _delivery(w: _Wiring) -> None:
    s = w.s
    revisions, status = s.topic("delivery_revisions"), s.topic("task_status")
    for utility in s.utilities:
        w.loop(sink_stage(utility.id), reads=[s.task_topic(utility.id), revisions], writes=[status, revisions])
    pull = s.sources.aishandong_payments_pull
    if pull is not None and pull.enabled:
        w.source(pull.name, writes=[s.topic("payments")])
    if s.payments is not None and s.payments.enabled:
        if s.payments.gateway is not None:
            signatures = s.topic("push_signatures")
            w.stage(s.payments.gateway.name, reads=[signatures], writes=[s.topic("payments"), signatures], dlq=False)
        w.loop(PAYMENTS, reads=[s.topic("payments")], writes=[])


def _permits(w: _Wiring) -> None:
    s = w.s
    if s.permits is None or not s.permits.enabled:
        return
    permits, states, status = s.topic("permits"), s.topic("permit_status"), s.topic("task_status")
    # it checks each application against its own view of the delivered tasks; refusals are dead-lettered
    w.stage(PERMIT_INTAKE, reads=[status], writes=[permits])
    # it reads the states at start (the permits already published) and reports EXTERNAL_WORKS on the task
    w.loop(PERMIT_SUBMITTER, reads=[permits, states], writes=[states, status])
    w.leased_loop(PERMIT_FOLLOWER, reads=[states], writes=[states])
    w.loop(PERMIT_NOTICES, reads=[states], writes=[])


def _surveys(w: _Wiring) -> None:
    s = w.s
    if s.surveys is None or not s.surveys.enabled:
        return
    surveys, replies = s.topic("surveys"), s.topic("survey_replies")
    w.stage(SURVEY_REPLIES, writes=[replies])  # refusals are dead-lettered
    # it reads the surveys topic back at start, with the task statuses
    w.leased_loop(JOINT_SURVEYS, reads=[s.topic("task_status"), replies, surveys], writes=[surveys])
    w.loop(SURVEY_NOTICES, reads=[surveys], writes=[])


def _statuses(w: _Wiring) -> None:
    s = w.s
    status = s.topic("task_status")
    if s.status_callbacks is not None and s.status_callbacks.enabled:
        w.stage(STATUS_CALLBACKS, reads=[status], writes=[status], dlq=False)
    for utility in s.utilities:
        if utility.status_poll is not None and utility.status_poll.enabled:
            w.source(poll_stage(utility.id), writes=[status])
    if s.ledger is not None and s.ledger.enabled:
        changelog = s.topic("ledger_changelog")
        w.loop(TaskLedger.stage, reads=[status, changelog], writes=[changelog, s.topic("sla")])


def _complaints(w: _Wiring) -> None:
    s = w.s
    if s.complaints is None or not s.complaints.enabled:
        return
    ledger = s.topic("complaints_ledger")
    # it restores its ledger topic at start; the answers it sends the platform go over HTTP
    reads = [s.topic("task_status"), s.topic("hotline_return_visits"), s.topic("complaints_closes"), ledger]
    w.leased_loop(COMPLAINTS, reads=reads, writes=[ledger, s.topic("complaints_escalations")])


def _supervision(w: _Wiring) -> None:
    s = w.s
    if s.supervision is None or not s.supervision.enabled:
        return
    # it follows each topic its pages read, without a group; the complaint ledger whenever complaints are set
    reads = [s.topic("ledger_changelog")]
    if s.complaints is not None:
        reads.append(s.topic("complaints_ledger"))
    if s.surveys is not None and s.surveys.enabled:
        reads.append(s.topic("surveys"))
    w.stage(SUPERVISION, reads=reads, dlq=False)


def principals(settings: Settings, stages: Iterable[str]) -> dict[str, str]:
    """Stage → its principal (``User:<name>``): its utility's for a sink, else its own, else the default.

    Raises:
        AclError: no ``acl`` section, a stage without a principal, or a principal for a stage not configured.
    """
    acl = settings.acl
    if acl is None:
        message = "acl: the configuration has no acl section (stage and utility principals)"
        raise AclError(message)
    names = list(stages)
    unknown = sorted(set(acl.stages) - set(names))
    if unknown:
        message = f"acl.stages.{unknown[0]}: no such stage in this configuration; configured: {', '.join(names)}"
        raise AclError(message)
    sinks = {sink_stage(utility): principal for utility, principal in acl.utilities.items()}
    chosen: dict[str, str] = {}
    for name in names:
        principal = sinks.get(name) or acl.stages.get(name) or acl.default
        if principal is None:
            message = f"acl.stages: no principal for stage {name}, and no acl.default"
            raise AclError(message)
        chosen[name] = f"User:{principal}"
    return chosen


def acls_of(principal: str, needs: Needs) -> set[Acl]:
    """The ACLs one stage's needs give its principal."""
    granted = {Acl(principal, "CLUSTER", CLUSTER, "IDEMPOTENT_WRITE")}  # every producer is idempotent
    for topic in needs.reads:
        granted |= {Acl(principal, "TOPIC", topic, "READ"), Acl(principal, "TOPIC", topic, "DESCRIBE")}
    for topic in needs.writes:
        granted |= {Acl(principal, "TOPIC", topic, "WRITE"), Acl(principal, "TOPIC", topic, "DESCRIBE")}
    granted |= {Acl(principal, "GROUP", group, "READ") for group in needs.groups}
    for tid in needs.transactional_ids:
        granted |= {Acl(principal, "TRANSACTIONAL_ID", tid, op) for op in ("WRITE", "DESCRIBE")}
    return granted


def plan(settings: Settings) -> list[Acl]:
    """Every ACL the configuration's principals need, sorted.

    Raises:
        AclError: see :func:`principals`.
    """
    needs = stage_needs(settings)
    chosen = principals(settings, needs)
    granted: set[Acl] = set()
    for name, stage in needs.items():
        granted |= acls_of(chosen[name], stage)
    return sorted(granted)


def why(settings: Settings) -> dict[Acl, list[str]]:
    """Each planned ACL → the stages that need it (for the plan's table)."""
    needs = stage_needs(settings)
    chosen = principals(settings, needs)
    reasons: dict[Acl, list[str]] = {}
    for name, stage in needs.items():
        for acl in acls_of(chosen[name], stage):
            reasons.setdefault(acl, []).append(name)
    return dict(sorted(reasons.items()))


class Difference(NamedTuple):
    """What ``apply`` must create, and what the principals hold beyond the plan (removed only with ``--prune``)."""

    missing: list[Acl]
    extra: list[Acl]


def difference(planned: Iterable[Acl], existing: Iterable[Acl]) -> Difference:
    """Planned ACLs not on the cluster yet, and the cluster's ACLs of the planned principals not planned."""
    wanted, held = set(planned), set(existing)
    principals_planned = {acl.principal for acl in wanted}
    extra = {acl for acl in held - wanted if acl.principal in principals_planned}
    return Difference(sorted(wanted - held), sorted(extra))


class Row(NamedTuple):
    """A line of ``ubridge acl plan``: one principal's operations on one resource, and the stages needing them."""

    principal: str
    resource: str
    name: str
    operations: str
    stages: str


def rows(reasons: dict[Acl, list[str]]) -> list[Row]:
    """The plan's ACLs grouped per principal and resource, for reading."""
    grouped: dict[tuple[str, str, str], tuple[set[str], set[str]]] = {}
    for acl, stages in reasons.items():
        operations, needing = grouped.setdefault((acl.principal, acl.resource, acl.name), (set(), set()))
        operations.add(acl.operation)
        needing.update(stages)
    return [
        Row(principal, resource, name, ", ".join(sorted(ops)), ", ".join(sorted(needing)))
        for (principal, resource, name), (ops, needing) in sorted(grouped.items())
    ]
