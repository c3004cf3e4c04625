import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml
from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from connectors.app import App
from connectors.cli import main
from connectors.migrate.task_topics import migrate_task_topics, sink_group
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_admin, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.settings import Settings, load_settings
from connectors.utility.revisions import KafkaRevisionReader
from connectors.utility.sink import UtilitySink, stage_name
from routing.records import UtilityTask
from schemas import Codec
from simulators.utility import UtilitySimulator
from tests.support import SERVICE_AREAS, make_task, utility_config, wait_until

pytestmark = pytest.mark.integration

WATER, GAS, HEAT = "yantai-water", "yantai-gas", "jinan-heat"
CODEC = Codec.default()
EACH = 20  # tasks per utility per batch


@pytest.fixture
def sims() -> Iterator[dict[str, tuple[UtilitySimulator, str]]]:
    """The three utilities' business systems."""
    running = {u: UtilitySimulator(u, token=f"token-{u}") for u in (WATER, GAS, HEAT)}
    urls = {u: sim.start() for u, sim in running.items()}
    yield {u: (sim, urls[u]) for u, sim in running.items()}
    for sim in running.values():
        sim.stop()


def write_config(tmp_path: Path, bootstrap: str, prefix: str, urls: dict[str, str]) -> tuple[Path, Settings]:
    """The installation's ubridge.yaml: three utilities."""
    document = {
        "kafka": {"bootstrap": bootstrap, "topic_prefix": prefix},
        "observability": {"log_format": "json", "metrics_port": 0},
        "routing": {"service_areas": str(SERVICE_AREAS)},
        "utilities": [utility_config(u, url) for u, url in urls.items()],
    }
    path = tmp_path / "ubridge.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path, load_settings(path)


def task(utility: str, n: int, *, note: str = "") -> UtilityTask:
    """Task ``n`` of ``utility``; ``note`` changes its content (a later revision)."""
    made = make_task(utility, n, project=f"2026-370602-47-01-{n % 7:06d}")
    return {**made, "project_name": (made["project_name"] or "") + note}


def publish_old_layout(settings: Settings, tasks: list[UtilityTask], *, extra: Sequence[bytes] = ()) -> None:
    """What the router of earlier releases wrote: every utility's tasks on the one task topic."""
    producer = make_producer(settings.kafka)
    for item in tasks:
        value = CODEC.encode("UtilityTask", item)
        producer.send(settings.topic("tasks"), key=(item["project_code"] or "").encode(), value=value)
    for value in extra:
        producer.send(settings.topic("tasks"), key=b"2026-370602-47-01-000001", value=value)
    producer.flush()
    producer.close()


def caught_up(settings: Settings, utilities: list[str]) -> bool:
    """Whether each utility's sink group committed the whole of the old task topic."""
    admin = make_admin(settings.kafka)
    try:
        committed = admin.list_group_offsets({sink_group(settings, u): None for u in utilities})
    except KafkaError:  # a new broker's group coordinator is not up yet
        return False
    finally:
        admin.close()
    consumer = make_consumer(settings.kafka, group_id=None)
    try:
        tps = [TopicPartition(settings.topic("tasks"), p) for p in range(3)]
        end = consumer.end_offsets(tps)
    finally:
        consumer.close()
    return all(
        (committed.get(sink_group(settings, u)) or {}).get(tp, OffsetAndMetadata(-1, "", -1)).offset == end[tp]
        for u in utilities
        for tp in tps
    )


def run_old_sinks(settings: Settings, utilities: list[str]) -> None:
    """The sinks of earlier releases, reading the one task topic, until they committed all of it."""
    stop = threading.Event()
    metrics = Metrics(CollectorRegistry())
    threads = []
    for config in settings.utilities:
        if config.id not in utilities:
            continue
        revisions = settings.topic("delivery_revisions")
        sink = UtilitySink(
            config,
            input_topic=settings.topic("tasks"),
            status_topic=settings.topic("task_status"),
            revisions_topic=revisions,
            revisions=KafkaRevisionReader(settings.kafka, revisions, utility=config.id),
            codec=CODEC,
            metrics=metrics,
            stop=stop,
        )
        loop = StageLoop(
            sink,
            consumer=make_consumer(settings.kafka, group_id=sink_group(settings, config.id)),
            producer=make_producer(settings.kafka),
            dlq_topic=settings.dlq_topic(stage_name(config.id)),
            metrics=metrics,
            stop=stop,
        )
        threads.append(threading.Thread(target=loop.run, daemon=True))
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: caught_up(settings, utilities), timeout_s=90, what="the old sinks to commit the first batch")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def test_undelivered_tasks_of_the_old_topic_reach_their_utilities_after_the_migration(
    tmp_path: Path,
    kafka_bootstrap: str,
    unique_prefix: str,
    sims: dict[str, tuple[UtilitySimulator, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Old layout, two sinks part-way, one never run: migrated, each utility gets exactly what it lacked, once."""
    config, settings = write_config(tmp_path, kafka_bootstrap, unique_prefix, {u: url for u, (_, url) in sims.items()})
    old = [TopicSpec(settings.topic(n), 3) for n in ("tasks", "task_status")]
    old += [TopicSpec(settings.dlq_topic(stage_name(u)), 1) for u in sims]
    ensure_topics(settings.kafka, [*old, TopicSpec(settings.topic("delivery_revisions"), 3, compacted=True)])
    first = [task(u, n) for n in range(EACH) for u in (WATER, GAS, HEAT)]
    first += [task(WATER, 3, note=" (revised)"), task(WATER, 4)]  # a change, and a repeat of the same content
    publish_old_layout(settings, first, extra=[b"not a task"])
    run_old_sinks(settings, [WATER, HEAT])
    water, gas, heat = (sims[u][0] for u in (WATER, GAS, HEAT))
    delivered = (water.stats().unique, water.stats().revisions, gas.stats().unique, heat.stats().unique)
    assert delivered == (EACH, 1, 0, EACH)
    second = [task(u, n) for n in range(EACH, 2 * EACH) for u in (WATER, GAS, HEAT)]
    second += [task(WATER, 5, note=" (revised)"), task(WATER, 7), task("zibo-water", 1)]
    publish_old_layout(settings, second)

    refused = App(settings, only=[stage_name(u) for u in sims], serve_metrics=False)
    refused.start()
    assert refused.wait(timeout_s=20) and refused.failed, "the new release must not start before the migration"

    assert main(["migrate", "tasks-topics", "--config", str(config), "--dry-run"]) == 0
    assert "would copy 22 task(s) to yantai-water's topic" in capsys.readouterr().out
    report = migrate_task_topics(settings)
    # water: its 20 new tasks, the change and the repeat; gas: everything; heat: its 20 new ones
    assert report.copied == {WATER: EACH + 2, GAS: 2 * EACH, HEAT: EACH}
    assert (report.unconfigured, len(report.unreadable)) == ({"zibo-water": 1}, 1)
    assert report.revisions_translated > 0
    again = migrate_task_topics(settings)
    assert (again.copied, sorted(again.partitions_already_migrated)) == ({}, [0, 1, 2])

    app = App(settings, only=[stage_name(u) for u in sims], serve_metrics=False)
    app.start()
    try:
        wait_until(
            lambda: (
                (water.stats().unique, gas.stats().unique, heat.stats().unique) == (2 * EACH,) * 3
                and water.stats().revisions == 2
            ),
            timeout_s=60,
            what="every undelivered task at its utility",
        )
    finally:
        app.stop()
        assert app.wait(timeout_s=20)
    assert not app.failed
    for sim, (utility, _) in zip((water, gas, heat), sims.items(), strict=True):
        assert {t.task_id for t in sim.tasks()} == {f"{utility}-{n:05d}" for n in range(2 * EACH)}
        assert sim.stats().repeats == 0  # nothing delivered before was sent again, not even under its old key
    revised = {t.task_id: t.revision for t in water.tasks() if t.revision > 1}
    assert revised == {f"{WATER}-00003": 2, f"{WATER}-00005": 2}
