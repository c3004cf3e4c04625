"""The 爱山东 router stage: applications → tasks keyed by application id, project lookups, dead letters."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from pydantic import SecretStr

from connectors.aishandong.awaiting import AwaitingApplications
from connectors.aishandong.router import (
    STAGE,
    ApplicationRouter,
    ChainedLookup,
    HttpProjectLookup,
    NoProjects,
)
from connectors.aishandong.rules import load_application_rules
from connectors.runtime.interface import Delivered
from routing.aishandong import parse_application
from routing.calendar import load_calendar
from routing.errors import DataError
from routing.gonggai import normalise
from routing.records import ProjectEvent
from routing.service_areas import load_service_areas
from schemas import Codec
from simulators.approval.generator import EventGenerator

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CODEC = Codec.default()
RULES = load_application_rules(CONFIG / "aishandong.yaml")
PROJECT = "2026-370602-47-01-000123"


def app_raw(**changes: Any) -> dict[str, Any]:
    app: dict[str, Any] = {
        "sqbh": "AS2026112500001",
        "sqlx": "报装",
        "fwlx": ["供水", "供气", "供热"],
        "sqrlx": "个人",
        "sqrxm": "张伟",
        "sfzhm": "11010519491231002X",
        "lxdh": "13912345678",
        "xzqhdm": "370602",
        "dz": "芝罘区幸福南路18号",
        "sqsj": "2026-11-25 09:00:00",
    }
    app.update(changes)
    return app


def record(offset: int = 0, **changes: Any) -> ConsumerRecord:
    application = parse_application(app_raw(**changes), ingested_at=NOW, vocabulary=RULES.vocabulary)
    value = CODEC.encode("ConnectionApplication", application)
    return ConsumerRecord("apps", 0, -1, offset, 0, 0, application["application_id"].encode(), value, [], None, 0, 0, 0)


def vendor_event(code: str = PROJECT) -> dict[str, Any]:
    event = EventGenerator(seed=4).generate(1)[0]
    event["xmdm"] = code
    return event


def project_event(code: str = PROJECT) -> ProjectEvent:
    return normalise(vendor_event(code), source="test", ingested_at=NOW)


class Lookup:
    def __init__(self, events: dict[str, ProjectEvent]) -> None:
        self.events = events
        self.asked: list[str] = []
        self.closed = False

    def get(self, project_code: str) -> ProjectEvent | None:
        self.asked.append(project_code)
        return self.events.get(project_code)

    def close(self) -> None:
        self.closed = True


def router(projects: Any = None) -> ApplicationRouter:
    return ApplicationRouter(
        input_topic="apps",
        output_topic="tasks",
        areas=load_service_areas(CONFIG / "service-areas.yaml"),
        calendar=load_calendar(CONFIG / "calendar.yaml"),
        shared_materials=RULES.shared_materials,
        projects=projects or NoProjects(),
        clock=lambda: NOW,
    )


def test_package_application_becomes_three_tasks_keyed_by_application() -> None:
    """套餐式: one application, three Avro tasks on the tasks topic, each keyed by the application id."""
    (outcome,) = router().process([record()])
    assert isinstance(outcome, Delivered)
    assert [o.topic for o in outcome.outputs] == ["tasks"] * 3
    assert {o.key for o in outcome.outputs} == {b"AS2026112500001"}
    tasks = [CODEC.decode_as("UtilityTask", o.value) for o in outcome.outputs]
    assert [t["utility_id"] for t in tasks] == ["yantai-water", "yantai-gas", "yantai-heat"]
    assert {t["application_id"] for t in tasks} == {"AS2026112500001"}
    assert all(t["missing_materials"] == [] for t in tasks)  # the form is the only material (000, 001, 004)
    assert all(t["materials_to_fetch"] == ["PERMIT:SITE_SURVEY:", "DRAWING:SITE_SURVEY:"] for t in tasks)
    assert all(t["contact_due"] == datetime(2026, 11, 25, 4, 0, tzinfo=UTC) for t in tasks)
    assert router().stage == STAGE == "router-aishandong"


def test_cited_project_is_looked_up_and_enriches_the_tasks() -> None:
    """An application citing a project gets its documents and name from the lookup."""
    lookup = Lookup({PROJECT: project_event()})
    (outcome,) = router(lookup).process([record(xmdm=PROJECT)])
    assert isinstance(outcome, Delivered)
    task = CODEC.decode_as("UtilityTask", outcome.outputs[0].value)
    assert lookup.asked == [PROJECT]
    assert task["project_name"] == project_event()["project_name"]
    assert task["flags"] == []


def test_unknown_project_never_blocks() -> None:
    """A project the lookup does not know yields tasks flagged project_not_found."""
    lookup = Lookup({})
    (outcome,) = router(lookup).process([record(xmdm=PROJECT)])
    assert isinstance(outcome, Delivered)
    assert CODEC.decode_as("UtilityTask", outcome.outputs[0].value)["flags"] == ["project_not_found"]


def test_no_lookup_without_a_project_code() -> None:
    """Applications citing no project do not ask the lookup."""
    lookup = Lookup({})
    list(router(lookup).process([record()]))
    assert lookup.asked == []


def test_unserved_and_undecodable_records_are_data_errors_in_order() -> None:
    """A site nobody serves and bytes that are not Avro become DataErrors; the good record between them routes."""
    garbage = ConsumerRecord("apps", 0, -1, 9, 0, 0, None, b"not avro", [], None, 0, 0, 0)
    outcomes = list(router().process([record(0, xzqhdm="370202"), record(1), garbage]))
    assert isinstance(outcomes[0], DataError) and outcomes[0].field == "xzqhdm"
    assert isinstance(outcomes[1], Delivered) and len(outcomes[1].outputs) == 3
    assert isinstance(outcomes[2], DataError)


def test_close_closes_the_lookup() -> None:
    """The stage owns its lookup."""
    lookup = Lookup({})
    router(lookup).close()
    assert lookup.closed


def test_chained_lookup_asks_in_order() -> None:
    """The first lookup that knows the project wins; both are closed."""
    first, second = Lookup({}), Lookup({PROJECT: project_event()})
    chain = ChainedLookup(first, second)
    found = chain.get(PROJECT)
    assert found is not None and found["project_code"] == PROJECT
    assert chain.get("2026-370602-47-01-000999") is None
    chain.close()
    assert first.closed and second.closed


def http_lookup(handler: Any) -> HttpProjectLookup:
    return HttpProjectLookup(
        base_url="http://approval.test/",
        token=SecretStr("lookup-token"),
        transport=httpx.MockTransport(handler),
        clock=lambda: NOW,
    )


def test_http_lookup_reads_one_project_with_a_bearer_token() -> None:
    """GET /api/v1/projects/{code} with the bearer token; a 200 event is validated and returned."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=vendor_event())

    event = http_lookup(handler).get(PROJECT)
    assert event is not None and event["project_code"] == PROJECT
    assert seen[0].url.path == f"/api/v1/projects/{PROJECT}"
    assert seen[0].headers["authorization"] == "Bearer lookup-token"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404, json={"error": "unknown"}),
        httpx.Response(500, text="boom"),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=[1]),
        httpx.Response(200, json={"xmdm": PROJECT}),
        httpx.Response(200, json=vendor_event("2026-370602-47-01-000999")),
    ],
)
def test_http_lookup_failures_yield_none(response: httpx.Response) -> None:
    """Unknown, failing, invalid or off-topic answers are None: enrichment never blocks an application."""
    assert http_lookup(lambda _: response).get(PROJECT) is None


def test_http_lookup_transport_error_yields_none() -> None:
    """A connection failure is logged and yields None."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    lookup = http_lookup(handler)
    assert lookup.get(PROJECT) is None
    lookup.close()


def test_records_are_avro_single_object_encoded() -> None:
    """Outputs carry the Avro single-object marker C3 01."""
    (outcome,) = router().process([record()])
    assert cast(Delivered, outcome).outputs[0].value[:2] == b"\xc3\x01"


class Stored:
    """The awaiting topic as the router reads it back: fixed contents per partition."""

    def __init__(self, values: dict[int, dict[bytes, bytes]] | None = None) -> None:
        self.values = values or {}

    def read(self, partitions: Sequence[int]) -> dict[int, dict[bytes, bytes]]:
        """What is stored for ``partitions``."""
        return {p: dict(self.values.get(p, {})) for p in partitions}


def awaiting_router(table: Lookup, stored: Stored | None = None) -> ApplicationRouter:
    """A router that keeps applications waiting for shared documents, with ``table`` as its project table."""
    awaiting = AwaitingApplications(topic="awaiting", reader=stored or Stored(), table=table, codec=CODEC)
    return ApplicationRouter(
        input_topic="apps",
        output_topic="tasks",
        areas=load_service_areas(CONFIG / "service-areas.yaml"),
        calendar=load_calendar(CONFIG / "calendar.yaml"),
        shared_materials=RULES.shared_materials,
        projects=table,
        awaiting=awaiting,
        clock=lambda: NOW,
    )


def with_drawing(event: ProjectEvent) -> ProjectEvent:
    """The project's event once 住建 shared its permit and drawing."""
    documents = [
        {"kind": "PERMIT", "number": "P-1", "title": "施工许可证", "url": None, "digest": None},
        {"kind": "DRAWING", "number": "T-1", "title": "总平面图", "url": "https://zj.example.cn/t1", "digest": None},
    ]
    return {**event, "event_id": "later", "documents": documents}  # type: ignore[typeddict-item]


def test_documents_arriving_later_are_routed_again_as_an_update() -> None:
    """Routed before 住建 shared the drawings: kept awaiting; once the table has them, the tasks carry them."""
    table = Lookup({})
    routing = awaiting_router(table)
    (outcome,) = routing.process([record(xmdm=PROJECT, fwlx=["供水"])])
    assert isinstance(outcome, Delivered)
    task, kept = outcome.outputs
    assert CODEC.decode_as("UtilityTask", task.value)["materials_to_fetch"] == [
        f"PERMIT:APPROVAL_SYSTEM:{PROJECT}",
        f"DRAWING:APPROVAL_SYSTEM:{PROJECT}",
    ]
    assert (kept.topic, kept.key, kept.partition) == ("awaiting", b"AS2026112500001", 0)
    assert routing.tick(NOW) == []  # the project is still unknown: nothing to update
    table.events[PROJECT] = with_drawing(project_event())
    update, released = routing.tick(NOW)
    updated = CODEC.decode_as("UtilityTask", update.value)
    assert (updated["task_id"], updated["materials_to_fetch"]) == (
        CODEC.decode_as("UtilityTask", task.value)["task_id"],
        [],
    )
    assert [d["title"] for d in updated["documents"]] == ["施工许可证", "总平面图"]
    assert (released.topic, released.key, released.value) == ("awaiting", b"AS2026112500001", b"")
    assert routing.tick(NOW) == []  # released: never routed again


def test_a_project_without_the_drawings_updates_and_keeps_waiting() -> None:
    """A newer event without the drawing updates the tasks (project data) and the application keeps waiting."""
    table = Lookup({})
    routing = awaiting_router(table)
    list(routing.process([record(xmdm=PROJECT, fwlx=["供水"])]))
    table.events[PROJECT] = project_event()
    (update,) = routing.tick(NOW)
    updated = CODEC.decode_as("UtilityTask", update.value)
    assert (updated["project_name"], len(updated["materials_to_fetch"])) == (project_event()["project_name"], 2)
    assert routing.tick(NOW) == []  # the same event again is not news


def test_awaiting_applications_are_restored_on_assignment() -> None:
    """A restarted router reads its partitions' awaiting applications back and updates them when due."""
    (outcome,) = awaiting_router(Lookup({})).process([record(xmdm=PROJECT, fwlx=["供水"])])
    _, kept = cast(Delivered, outcome).outputs
    table = Lookup({PROJECT: with_drawing(project_event())})
    routing = awaiting_router(table, Stored({2: {kept.key: kept.value}}))
    routing.on_assigned([TopicPartition("apps", 2)])
    update, released = routing.tick(NOW)
    assert (update.topic, released.partition, released.value) == ("tasks", 2, b"")
    routing.on_revoked([TopicPartition("apps", 2)])
    assert routing.tick(NOW) == []


def test_the_awaiting_record_keeps_no_id_number_nor_note() -> None:
    """The awaiting table keeps the contact the update needs, not the ID number, the note or an ID card's number."""
    id_card = {"lx": "身份证", "mc": "身份证", "bh": "11010519491231002X", "url": "https://zwfw.example.cn/cl/1"}
    (outcome,) = awaiting_router(Lookup({})).process(
        [record(xmdm=PROJECT, fwlx=["供水"], bz="身份证号见附件", cl=[id_card])]
    )
    task, kept = cast(Delivered, outcome).outputs
    stored = CODEC.decode_as("ConnectionApplication", kept.value)
    assert (stored["applicant_id_number"], stored["note"], stored["materials"][0]["number"]) == (None, None, None)
    assert (stored["applicant_name"], stored["applicant_mobile"]) == ("张伟", "13912345678")
    assert CODEC.decode_as("UtilityTask", task.value)["contact_mobile"] == "13912345678"


def test_an_application_written_before_stripping_is_rewritten_stripped() -> None:
    """A record read back with its ID number (written by an earlier version) is written again without it."""
    old = record(xmdm=PROJECT, fwlx=["供水"])
    routing = awaiting_router(Lookup({}), Stored({1: {old.key: old.value}}))
    routing.on_assigned([TopicPartition("apps", 1)])
    (rewritten,) = routing.tick(NOW)
    assert (rewritten.topic, rewritten.key, rewritten.partition) == ("awaiting", old.key, 1)
    assert CODEC.decode_as("ConnectionApplication", rewritten.value)["applicant_id_number"] is None
    assert routing.tick(NOW) == []


def test_an_application_past_its_contact_retention_is_released() -> None:
    """30 days after its filing an awaiting application is tombstoned and never updated again."""
    table = Lookup({})
    routing = awaiting_router(table)
    list(routing.process([record(xmdm=PROJECT, fwlx=["供水"])]))
    assert routing.tick(NOW + timedelta(days=29)) == []
    (released,) = routing.tick(NOW + timedelta(days=30))
    assert (released.topic, released.key, released.value) == ("awaiting", b"AS2026112500001", b"")
    table.events[PROJECT] = with_drawing(project_event())
    assert routing.tick(NOW + timedelta(days=30)) == []


def test_an_application_citing_no_project_never_waits() -> None:
    """Without a project code there is nothing the approval system could send: no awaiting record."""
    (outcome,) = awaiting_router(Lookup({})).process([record(fwlx=["供水"])])
    assert isinstance(outcome, Delivered)
    assert [o.topic for o in outcome.outputs] == ["tasks"]
