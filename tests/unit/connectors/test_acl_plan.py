from pathlib import Path
from typing import Any

import pytest

from connectors.acl.plan import Acl, AclError, Row, difference, plan, principals, rows, stage_needs, why
from connectors.registry import stage_specs
from connectors.settings import ConfigError, Settings, parse_settings

CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "config"
SECRET = "a-webhook-secret-of-32-characters!"
UTILITIES = ("yantai-water", "yantai-gas", "jinan-heat")
P = "t1."  # the topic prefix: every name granted carries it


def document(**acl: Any) -> dict[str, Any]:
    """Every stage ubridge has, a status-polled utility among three, and ``acl``."""
    utilities: list[dict[str, Any]] = [
        {"id": u, "endpoint": f"http://{u}.example/v1/tasks", "auth": {"type": "bearer", "token": f"t-{u}"}}
        for u in UTILITIES
    ]
    utilities[1]["status_poll"] = {"base_url": "https://gas.example"}
    calendar = str(CONFIG / "calendar.yaml")
    return {
        "kafka": {"topic_prefix": P},
        "sources": {
            "gonggai_interface": {"base_url": "http://approval:8080", "token": "t"},
            "gonggai_webhook": {
                "port": 0,
                "secret": SECRET,
                "mapping": str(CONFIG / "mappings" / "vendor-yantai.yaml"),
            },
            "gonggai_spgl": {"url": "sqlite:///exchange.db"},
            "aishandong_gateway": {"port": 0, "secret": SECRET},
            "aishandong_pull": {"base_url": "http://gateway:8080", "token": "t"},
            "aishandong_payments_pull": {"base_url": "http://app:8080", "token": "t"},
        },
        "routing": {"service_areas": str(CONFIG / "service-areas.yaml")},
        "applications": {"calendar": calendar},
        "ledger": {"calendar": calendar, "policies": str(CONFIG / "sla-policies.yaml")},
        "status_callbacks": {"port": 0},
        "payments": {
            "gateway": {"port": 0, "secret": SECRET},
            "acknowledgement": {"url": "http://aishandong:8080/v1/payment-receipts", "token": "t"},
        },
        "hotline": {
            "push": {"port": 0, "secret": SECRET},
            "pull": {"base_url": "http://platform:8080", "token": "t"},
        },
        "permits": {
            "intake": {"port": 0},
            "approval": {"url": "http://approval:8080", "token": "t"},
            "calendar": calendar,
        },
        "surveys": {"intake": {"port": 0}, "calendar": calendar},
        "complaints": {
            "policy": str(CONFIG / "complaints.yaml"),
            "satisfaction": str(CONFIG / "satisfaction.yaml"),
            "calendar": calendar,
            "platform": {"url": "http://platform:8080", "token": "t"},
        },
        "supervision": {"port": 0, "token": "a-department-token-of-32-characters"},
        "utilities": utilities,
        "acl": acl or {"default": "stages", "utilities": {u: u for u in UTILITIES}},
    }


def settings(**acl: Any) -> Settings:
    """The full configuration with ``acl``."""
    return parse_settings(document(**acl))


def held(acls: list[Acl], principal: str, resource: str = "TOPIC") -> dict[str, set[str]]:
    """Resource name → operations ``principal`` is granted."""
    found: dict[str, set[str]] = {}
    for acl in acls:
        if acl.principal == principal and acl.resource == resource:
            found.setdefault(acl.name, set()).add(acl.operation)
    return found


def test_every_stage_the_configuration_runs_has_its_needs() -> None:
    """The needs follow the registry: one entry per stage it builds, none invented."""
    full = settings()
    assert set(stage_needs(full)) == {spec.name for spec in stage_specs(full)}
    assert len(stage_needs(full)) == 31


def test_the_needs_are_listed_in_the_registry_s_order() -> None:
    """Stage by stage as ``stage_specs`` lists them (the first stage without a principal is the one named)."""
    full = settings()
    assert list(stage_needs(full)) == [spec.name for spec in stage_specs(full)]


def test_a_stage_that_does_not_dead_letter_has_no_dead_letter_topic_and_the_others_have_theirs() -> None:
    """A DLQ write exactly for the stages the registry builds with ``dead_letters=True``."""
    full = settings()
    needs = stage_needs(full)
    for spec in stage_specs(full):
        assert (full.dlq_topic(spec.name) in needs[spec.name].writes) == spec.dead_letters, spec.name


def test_a_utility_principal_reads_its_own_task_topic_and_no_other() -> None:
    """yantai-water's principal: Read on its task topic; nothing at all on any other utility's."""
    acls = plan(settings())
    topics = held(acls, "User:yantai-water")
    assert {name for name in topics if ".tasks." in name} == {f"{P}ubridge.tasks.yantai-water.v1"}
    assert topics[f"{P}ubridge.tasks.yantai-water.v1"] == {"READ", "DESCRIBE"}


def test_a_sink_principal_holds_exactly_what_its_sink_does() -> None:
    """Its task topic and revisions in, status and revisions out, its dead letters, its group; nothing more."""
    acls = plan(settings())
    assert held(acls, "User:jinan-heat") == {
        f"{P}ubridge.tasks.jinan-heat.v1": {"READ", "DESCRIBE"},
        f"{P}ubridge.delivery-revisions.v1": {"READ", "WRITE", "DESCRIBE"},
        f"{P}ubridge.task-status.v1": {"WRITE", "DESCRIBE"},
        f"{P}ubridge.dlq.sink-jinan-heat.v1": {"WRITE", "DESCRIBE"},
        f"{P}ubridge.control.v1": {"READ", "DESCRIBE"},
        f"{P}ubridge.stage-status.v1": {"WRITE", "DESCRIBE"},
    }
    assert held(acls, "User:jinan-heat", "GROUP") == {f"{P}ubridge.sink-jinan-heat": {"READ"}}
    assert held(acls, "User:jinan-heat", "TRANSACTIONAL_ID") == {}
    assert held(acls, "User:jinan-heat", "CLUSTER") == {"kafka-cluster": {"IDEMPOTENT_WRITE"}}


def test_the_router_writes_every_utility_s_task_topic_and_reads_none() -> None:
    """The routers' principal may write each configured utility's tasks, never read them."""
    acls = plan(settings(default="stages", stages={"router": "router"}))
    topics = held(acls, "User:router")
    tasks = {name: ops for name, ops in topics.items() if ".tasks." in name}
    assert tasks == {f"{P}ubridge.tasks.{u}.v1": {"WRITE", "DESCRIBE"} for u in UTILITIES}
    assert topics[f"{P}ubridge.canonical.project-events.v1"] == {"READ", "DESCRIBE"}
    assert topics[f"{P}ubridge.router.grants.v1"] == {"READ", "WRITE", "DESCRIBE"}


def test_a_leased_source_gets_its_lease_group_its_cursor_and_its_transactional_id() -> None:
    """A pull source: coordination and cursor topics, the lease group, the transactional id it writes with."""
    acls = plan(settings(default="stages", stages={"gonggai-spgl": "spgl"}))
    assert held(acls, "User:spgl", "GROUP") == {f"{P}ubridge.lease.gonggai-spgl": {"READ"}}
    assert held(acls, "User:spgl", "TRANSACTIONAL_ID") == {f"{P}ubridge-source-gonggai-spgl": {"WRITE", "DESCRIBE"}}
    topics = held(acls, "User:spgl")
    assert topics[f"{P}ubridge.raw.gonggai-spgl.v1"] == {"WRITE", "DESCRIBE"}
    assert topics[f"{P}ubridge.source-offsets.v1"] == {"READ", "WRITE", "DESCRIBE"}
    assert topics[f"{P}ubridge.coordination.v1"] == {"READ", "DESCRIBE"}
    assert f"{P}ubridge.canonical.project-events.v1" not in topics  # the normaliser's, another stage


def test_a_status_poller_writes_statuses_from_a_source_of_its_own() -> None:
    """status-poll-<utility> is leased and transactional like a source, and writes the task-status topic."""
    acls = plan(settings(default="stages", stages={"status-poll-yantai-gas": "poller"}))
    assert held(acls, "User:poller", "TRANSACTIONAL_ID") == {
        f"{P}ubridge-source-status-poll-yantai-gas": {"WRITE", "DESCRIBE"}
    }
    assert held(acls, "User:poller")[f"{P}ubridge.task-status.v1"] == {"WRITE", "DESCRIBE"}


def test_intakes_share_the_push_signatures_and_have_no_dead_letters() -> None:
    """The webhook and gateway answer bad input with 4xx: no dead-letter topic, the replay log read and written."""
    acls = plan(settings(default="stages", stages={"gonggai-webhook": "hook", "aishandong-gateway": "gate"}))
    for principal, out in (("User:hook", "raw.gonggai"), ("User:gate", "canonical.applications")):
        topics = held(acls, principal)
        assert topics[f"{P}ubridge.push-signatures.v1"] == {"READ", "WRITE", "DESCRIBE"}
        assert topics[f"{P}ubridge.{out}.v1"] == {"WRITE", "DESCRIBE"}
        assert not [name for name in topics if ".dlq." in name]
        assert held(acls, principal, "GROUP") == {}


def test_every_grant_is_literal_and_carries_the_prefix() -> None:
    """No wildcard and no name outside the installation's prefix (the cluster resource aside)."""
    for acl in plan(settings()):
        assert "*" not in acl.name
        assert acl.name == "kafka-cluster" if acl.resource == "CLUSTER" else acl.name.startswith(P)


def test_stages_sharing_a_principal_get_the_union_and_are_named_in_the_table() -> None:
    """The default principal holds every unnamed stage's rights; the table says which stages need each."""
    full = settings(default="stages", utilities={"yantai-water": "yantai-water"})
    table = {(row.principal, row.name): row for row in rows(why(full))}
    status = table[("User:stages", f"{P}ubridge.task-status.v1")]
    assert status.operations == "DESCRIBE, READ, WRITE"  # the callbacks read it, the ledger too, sinks write it
    assert "sink-jinan-heat" in status.stages and "ledger" in status.stages
    routed = table[("User:stages", f"{P}ubridge.tasks.yantai-water.v1")]  # the routers write it, nobody reads
    assert (routed.operations, routed.stages) == ("DESCRIBE, WRITE", "hotline-router, router, router-aishandong")
    assert table[("User:yantai-water", f"{P}ubridge.tasks.yantai-water.v1")] == Row(
        "User:yantai-water", "TOPIC", f"{P}ubridge.tasks.yantai-water.v1", "DESCRIBE, READ", "sink-yantai-water"
    )


def test_a_stage_without_a_principal_is_an_error_naming_it() -> None:
    """No default and a stage left out: the error names the stage."""
    with pytest.raises(AclError, match=r"^acl.stages: no principal for stage gonggai-interface, and no acl.default$"):
        plan(settings(stages={"router": "router"}))


def test_a_principal_for_a_stage_not_configured_is_an_error_naming_the_key() -> None:
    """A misspelt stage under acl.stages is refused, with the stages there are."""
    with pytest.raises(AclError, match=r"^acl.stages.routr: no such stage in this configuration; configured: "):
        plan(settings(default="stages", stages={"routr": "router"}))


def test_no_acl_section_cannot_be_planned() -> None:
    """Principals are configuration: without them there is no plan."""
    document_without = document()
    del document_without["acl"]
    with pytest.raises(AclError, match="no acl section"):
        principals(parse_settings(document_without), ["router"])


def test_a_principal_for_an_unconfigured_utility_is_refused_at_load() -> None:
    """acl.utilities may name only configured utilities; the error names the key and the utility."""
    with pytest.raises(ConfigError, match=r"acl.utilities names utilities with no utilities\[\] entry: zibo-water"):
        parse_settings(document(default="stages", utilities={"zibo-water": "zibo"}), origin="u.yaml")


@pytest.mark.parametrize("name", ["", "has space", "User:x", "a,b", "a;b", "*"])
def test_principal_names_that_acl_tooling_would_misread_are_refused(name: str) -> None:
    """Empty names, whitespace and the separators of principals and ACL tooling are configuration errors."""
    with pytest.raises(ConfigError, match=r"acl.default: String should match pattern"):
        parse_settings(document(default=name), origin="u.yaml")


def test_the_difference_creates_what_is_missing_and_reports_only_the_planned_principals_extras() -> None:
    """Missing ACLs are created; a planned principal's others are extra; other principals' are not ubridge's."""
    keep = Acl("User:a", "TOPIC", "t", "READ")
    new = Acl("User:a", "TOPIC", "t", "DESCRIBE")
    stale = Acl("User:a", "TOPIC", "old", "READ")
    foreign = Acl("User:someone", "TOPIC", "t", "WRITE")
    assert difference([keep, new], [keep, stale, foreign]) == ([new], [stale])
    assert difference([keep], [keep]) == ([], [])


def test_the_payment_stages_touch_only_the_payments_topic() -> None:
    """The payment intake writes the payments topic; the delivery stage reads it and writes only its dead letters."""
    needs = stage_needs(settings())
    assert f"{P}ubridge.payments.v1" in needs["aishandong-payments"].writes
    assert f"{P}ubridge.payments.v1" in needs["aishandong-payments-pull"].writes
    assert needs["payments"].reads == {f"{P}ubridge.payments.v1", f"{P}ubridge.control.v1"}
    assert needs["payments"].writes == {f"{P}ubridge.dlq.payments.v1", f"{P}ubridge.stage-status.v1"}


CONTROL, STATUS = f"{P}ubridge.control.v1", f"{P}ubridge.stage-status.v1"  # every process's own two


def test_the_hotline_router_reads_the_work_orders_and_writes_every_utility_s_task_topic() -> None:
    """It routes each order to the task topic of the utility serving it: all of them writable, none read."""
    needs = stage_needs(settings())["hotline-router"]
    assert needs.reads == {f"{P}ubridge.hotline.work-orders.v1", CONTROL}
    tasks = {f"{P}ubridge.tasks.{u}.v1" for u in UTILITIES}
    assert needs.writes == {*tasks, f"{P}ubridge.dlq.hotline-router.v1", STATUS}
    assert needs.groups == {f"{P}ubridge.hotline-router"}


def test_the_hotline_intakes_write_work_orders_and_return_visits() -> None:
    """The push intake shares the replay log and has no dead letters; the pull source is leased and transactional."""
    needs = stage_needs(settings())
    orders = {f"{P}ubridge.hotline.work-orders.v1", f"{P}ubridge.hotline.return-visits.v1"}
    signatures = f"{P}ubridge.push-signatures.v1"
    push = needs["hotline-push"]
    assert (push.reads, push.writes) == ({signatures, CONTROL}, {*orders, signatures, STATUS})
    assert push.groups == push.transactional_ids == frozenset()
    pull = needs["hotline-pull"]
    assert orders | {f"{P}ubridge.dlq.hotline-pull.v1", f"{P}ubridge.source-offsets.v1"} <= pull.writes
    assert pull.groups == {f"{P}ubridge.lease.hotline-pull"}
    assert pull.transactional_ids == {f"{P}ubridge-source-hotline-pull"}


def test_leased_loops_hold_their_lease_group_beside_their_own() -> None:
    """The permit follower, the joint surveys and the complaint loop: both groups, the coordination topic read."""
    needs = stage_needs(settings())
    for stage in ("permit-follower", "joint-surveys", "complaints"):
        assert needs[stage].groups == {f"{P}ubridge.{stage}", f"{P}ubridge.lease.{stage}"}, stage
        assert f"{P}ubridge.coordination.v1" in needs[stage].reads, stage
        assert needs[stage].transactional_ids == frozenset(), stage
    assert needs["permit-submitter"].groups == {f"{P}ubridge.permit-submitter"}  # not leased


def test_the_permit_stages_read_and_write_what_they_do() -> None:
    """Intake: statuses in, permits out; submitter: states read back, states and task reports out; notices: POSTs."""
    needs = stage_needs(settings())
    permits, states, tasks = f"{P}ubridge.permits.v1", f"{P}ubridge.permit-status.v1", f"{P}ubridge.task-status.v1"
    intake = needs["permit-intake"]
    assert intake.reads == {tasks, CONTROL}
    assert intake.writes == {permits, f"{P}ubridge.dlq.permit-intake.v1", STATUS}
    assert intake.groups == frozenset()  # its task view reads without a group
    submitter = needs["permit-submitter"]
    assert submitter.reads == {permits, states, CONTROL}
    assert {states, tasks} <= submitter.writes
    assert needs["permit-follower"].writes == {states, f"{P}ubridge.dlq.permit-follower.v1", STATUS}
    assert needs["permit-notices"].writes == {f"{P}ubridge.dlq.permit-notices.v1", STATUS}


def test_the_survey_stages_read_and_write_what_they_do() -> None:
    """Replies in over HTTP; the surveys read back at start with the statuses and replies; notices only POST."""
    needs = stage_needs(settings())
    surveys, replies = f"{P}ubridge.surveys.v1", f"{P}ubridge.survey-replies.v1"
    assert needs["survey-replies"].reads == {CONTROL}
    assert needs["survey-replies"].writes == {replies, f"{P}ubridge.dlq.survey-replies.v1", STATUS}
    joint = needs["joint-surveys"]
    assert {f"{P}ubridge.task-status.v1", replies, surveys} <= joint.reads
    assert joint.writes == {surveys, f"{P}ubridge.dlq.joint-surveys.v1", STATUS}
    assert needs["survey-notices"].reads == {surveys, CONTROL}


def test_the_supervision_view_only_reads_the_topics_its_pages_show() -> None:
    """The ledger's changelog, the complaint ledger and the surveys, without a group; it writes nothing of its own."""
    needs = stage_needs(settings())["supervision-view"]
    assert needs.reads == {
        f"{P}ubridge.ledger.changelog.v1",
        f"{P}ubridge.complaints.ledger.v1",
        f"{P}ubridge.surveys.v1",
        CONTROL,
    }
    assert needs.writes == {STATUS}
    assert needs.groups == needs.transactional_ids == frozenset()


def test_the_complaint_loop_reads_its_inputs_and_its_ledger_and_writes_the_ledger_and_escalations() -> None:
    """Statuses, return visits, closes and its own ledger in; the ledger, 督办 and its dead letters out."""
    needs = stage_needs(settings())["complaints"]
    ledger = f"{P}ubridge.complaints.ledger.v1"
    inputs = {f"{P}ubridge.task-status.v1", f"{P}ubridge.hotline.return-visits.v1", f"{P}ubridge.complaints.closes.v1"}
    assert needs.reads == {*inputs, ledger, f"{P}ubridge.coordination.v1", CONTROL}
    escalations = f"{P}ubridge.complaints.escalations.v1"
    assert needs.writes == {ledger, escalations, f"{P}ubridge.dlq.complaints.v1", STATUS}


def test_without_their_sections_their_stages_are_not_planned_and_the_view_reads_only_the_ledger() -> None:
    """No hotline, permits, surveys or complaints: none of their stages; the supervision view follows the ledger."""
    bare = document()
    for section in ("hotline", "permits", "surveys", "complaints"):
        del bare[section]
    needs = stage_needs(parse_settings(bare))
    assert len(needs) == 31 - 11
    assert not set(needs) & {"hotline-push", "hotline-router", "permit-intake", "joint-surveys", "complaints"}
    assert needs["supervision-view"].reads == {f"{P}ubridge.ledger.changelog.v1", CONTROL}
