"""爱山东 payments on the real broker: signed push → payments topic → the utility posts it once → receipt to 爱山东."""

import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from connectors.app import App
from connectors.payments.gateway import build_payment_gateway
from connectors.payments.settings import PAYMENTS_PATH, PaymentGatewaySettings
from connectors.payments.stage import ACK_PEER, PaymentDelivery, Target
from connectors.runtime.dlq import error_context
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.logs import configure_logging
from connectors.runtime.metrics import Metrics
from connectors.runtime.peer_post import BoundedRetry, PeerPoster
from connectors.runtime.stage import StageLoop
from connectors.settings import KafkaSettings
from routing.service_areas import load_service_areas
from schemas import Codec
from simulators.aishandong import RECEIPTS_PATH, PaymentPlatform, make_payments, push_payments
from simulators.utility.server import UtilitySimulator
from tests.support import read_topic, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[2] / "deploy" / "config"
SECRET = "integration-payments-0123456789"
TOKEN = "utility-token"
RECEIPT_TOKEN = "aishandong-receipts"
CODEC = Codec.default()
UTILITIES = ("yantai-water", "yantai-gas", "yantai-heat")
RETRY = BoundedRetry(initial_backoff_s=0.05, max_backoff_s=0.3, max_retry_after_s=0.5, max_attempts=10)


@dataclass
class Pipeline:
    url: str
    payments: str
    dlq: str
    utilities: dict[str, UtilitySimulator]
    platform: PaymentPlatform
    logs: io.StringIO
    stop: threading.Event
    metrics: Metrics


@pytest.fixture
def pipeline(kafka_bootstrap: str, unique_prefix: str) -> Iterator[Pipeline]:
    """Payment intake and delivery stage, three utility simulators and the app's receipt endpoint."""
    logs = io.StringIO()
    configure_logging(json=True, level="debug", stream=logs)
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    payments, dlq = f"{unique_prefix}ubridge.payments.v1", f"{unique_prefix}ubridge.dlq.payments.v1"
    ensure_topics(kafka, [TopicSpec(payments, 3), TopicSpec(dlq, 1)])
    utilities = {utility: UtilitySimulator(utility, token=TOKEN) for utility in UTILITIES}
    urls = {utility: simulator.start() for utility, simulator in utilities.items()}
    platform = PaymentPlatform(token=RECEIPT_TOKEN)
    platform_url = platform.start()
    metrics = Metrics(CollectorRegistry())
    stop = threading.Event()
    intake = build_payment_gateway(
        PaymentGatewaySettings(secret=SecretStr(SECRET), port=0),
        kafka=kafka,
        topic=payments,
        metrics=metrics,
        stop=stop,
    )

    def poster(peer: str, token: str) -> PeerPoster:
        return PeerPoster(
            peer,
            subject="payment",
            token=SecretStr(token),
            timeout_s=5,
            retry=RETRY,
            retries=metrics.payment_retries,
            stop=stop,
        )

    delivery = PaymentDelivery(
        input_topic=payments,
        areas=load_service_areas(CONFIG / "service-areas.yaml"),
        targets={u: Target(f"{url}{PAYMENTS_PATH}", poster(u, TOKEN)) for u, url in urls.items()},
        acknowledgement_url=f"{platform_url}{RECEIPTS_PATH}",
        acknowledger=poster(ACK_PEER, RECEIPT_TOKEN),
        codec=CODEC,
        metrics=metrics,
    )
    consumer = make_consumer(kafka, group_id=f"{unique_prefix}payments")
    loop = StageLoop(
        delivery, consumer=consumer, producer=make_producer(kafka), dlq_topic=dlq, metrics=metrics, stop=stop
    )
    threads = [threading.Thread(target=intake.run, daemon=True), threading.Thread(target=loop.run, daemon=True)]
    for thread in threads:
        thread.start()
    yield Pipeline(
        f"http://127.0.0.1:{intake.port}{PAYMENTS_PATH}", payments, dlq, utilities, platform, logs, stop, metrics
    )
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
        assert not thread.is_alive()
    for simulator in utilities.values():
        simulator.stop()
    platform.stop()


def posted(pipeline: Pipeline) -> dict[str, list[str]]:
    """Utility → the payment ids it posted."""
    return {u: [p.payment_id for p in s.payments.payments()] for u, s in pipeline.utilities.items()}


def test_payments_reach_their_utility_once_and_receipts_return(kafka_bootstrap: str, pipeline: Pipeline) -> None:
    """30 payments, pushed twice, are posted once each at the right utility and receipted back, amounts exact."""
    payments = make_payments(30, seed=7, regions=["370602", "370612"])
    assert [r.status for r in push_payments(pipeline.url, SECRET, payments, charset="gbk")] == [202] * 30
    assert [r.status for r in push_payments(pipeline.url, SECRET, payments[:10], clock=lambda: time.time() + 2)] == [
        202
    ] * 10
    wait_until(lambda: len(pipeline.platform.receipts()) >= 30, timeout_s=60, what="30 receipts")
    assert len(read_topic(kafka_bootstrap, pipeline.payments)) == 40
    wait_until(
        lambda: pipeline.metrics.registry.get_sample_value("ubridge_payments_received_total") == 40,
        timeout_s=30,
        what="40 read",
    )

    service_of = {"供水": "yantai-water", "自来水": "yantai-water", "用水": "yantai-water"}
    service_of |= dict.fromkeys(("供气", "燃气", "天然气"), "yantai-gas") | dict.fromkeys(
        ("供热", "供暖", "采暖"), "yantai-heat"
    )
    expected = {u: sorted(p["jfbh"] for p in payments if service_of[p["fwlx"]] == u) for u in UTILITIES}
    assert {u: sorted(ids) for u, ids in posted(pipeline).items()} == expected
    assert sum(s.payments.stats().posted for s in pipeline.utilities.values()) == 30

    bodies = {p.payment_id: p.body for s in pipeline.utilities.values() for p in s.payments.payments()}
    assert all(bodies[p["jfbh"]]["amount"] == p["je"] for p in payments)
    categorised = [p for p in payments if "yhlb" in p]
    assert categorised and all(bodies[p["jfbh"]]["user_category"] is not None for p in categorised)
    assert all(bodies[p["jfbh"]]["user_category"] is None for p in payments if "yhlb" not in p)

    receipts = {r.payment_id: r for r in pipeline.platform.receipts()}
    held = {p.payment_id: p.receipt_no for s in pipeline.utilities.values() for p in s.payments.payments()}
    assert {pid: r.receipt_no for pid, r in receipts.items()} == held
    assert all(
        r.utility_id == service_of[next(p["fwlx"] for p in payments if p["jfbh"] == pid)] for pid, r in receipts.items()
    )

    total = sum(round(float(p["je"]) * 100) for p in payments)
    counted = sum(
        pipeline.metrics.registry.get_sample_value("ubridge_payment_amount_fen_total", {"utility": u}) or 0
        for u in UTILITIES
    )
    assert counted == total
    assert read_topic(kafka_bootstrap, pipeline.dlq) == []
    text = pipeline.logs.getvalue()
    assert "payment_delivered" in text
    assert not [p["jfr"] for p in payments if p["jfr"] in text], "payer names in the logs"


def test_bad_payments_are_refused_or_dead_lettered_while_others_pass(kafka_bootstrap: str, pipeline: Pipeline) -> None:
    """Invalid payments get 422 naming the field; one no utility serves, or a reused id, goes to the DLQ with why."""
    good, other, unserved, reused = make_payments(4, seed=8, regions=["370602"])
    refusals = push_payments(
        pipeline.url,
        SECRET,
        [
            {**good, "je": "0"},
            {**good, "je": "12.345"},
            {**good, "zq": "2026-13"},
            {**good, "qd": "现金"},
            {**good, "fwlx": "供油"},
        ],
    )
    assert [(r.status, r.body.get("field")) for r in refusals] == [
        (422, "je"),
        (422, "je"),
        (422, "zq"),
        (422, "qd"),
        (422, "fwlx"),
    ]
    unserved = {**unserved, "xzqhdm": "110101"}
    clash = {**reused, "jfbh": good["jfbh"], "hh": "9999999999", "fwlx": good["fwlx"]}
    assert [r.status for r in push_payments(pipeline.url, SECRET, [good, unserved])] == [202, 202]
    wait_until(lambda: len(pipeline.platform.receipts()) >= 1, timeout_s=60, what="the good payment's receipt")
    assert [r.status for r in push_payments(pipeline.url, SECRET, [clash, other])] == [202, 202]
    wait_until(lambda: len(read_topic(kafka_bootstrap, pipeline.dlq)) >= 2, timeout_s=60, what="two dead letters")
    wait_until(lambda: len(pipeline.platform.receipts()) >= 2, timeout_s=60, what="the other payment's receipt")

    letters = {r.key.decode(): error_context(r.headers) for r in read_topic(kafka_bootstrap, pipeline.dlq)}
    assert sorted(letters) == sorted([unserved["jfbh"], good["jfbh"]])
    assert "no utility serves" in letters[unserved["jfbh"]]["message"]
    assert "used before for another payment" in letters[good["jfbh"]]["message"]
    assert sorted(r.payment_id for r in pipeline.platform.receipts()) == sorted([good["jfbh"], other["jfbh"]])


def test_a_utility_down_is_retried_and_one_still_down_is_dead_lettered(
    kafka_bootstrap: str, pipeline: Pipeline
) -> None:
    """A short outage and a flaky 爱山东 are retried through; a utility down for good dead-letters only its payment."""
    payments = make_payments(12, seed=9, regions=["370602"])
    water = [p for p in payments if p["fwlx"] in ("供水", "自来水", "用水")]
    heat = [p for p in payments if p["fwlx"] in ("供热", "供暖", "采暖")]
    assert water and heat
    pipeline.utilities["yantai-water"].payments.set_faults(outage_s=1.0, retry_after_s=0.2)
    pipeline.utilities["yantai-heat"].payments.set_faults(error_rate=1.0, error_status=503, retry_after_s=0.1)
    pipeline.platform.set_faults(error_rate=0.3, fail_after_store_rate=0.2, retry_after_s=0.05)
    assert [r.status for r in push_payments(pipeline.url, SECRET, payments)] == [202] * 12
    served = len(payments) - len(heat)
    wait_until(lambda: len(pipeline.platform.receipts()) >= served, timeout_s=90, what="receipts of the served")
    wait_until(lambda: len(read_topic(kafka_bootstrap, pipeline.dlq)) >= len(heat), timeout_s=90, what="heat's letters")

    assert sorted(posted(pipeline)["yantai-water"]) == sorted(p["jfbh"] for p in water)
    assert pipeline.utilities["yantai-water"].payments.stats().faults_injected > 0
    letters = [error_context(r.headers) for r in read_topic(kafka_bootstrap, pipeline.dlq)]
    assert all("yantai-heat still failing after 10 attempts" in letter["message"] for letter in letters)
    assert sorted(r.key.decode() for r in read_topic(kafka_bootstrap, pipeline.dlq)) == sorted(p["jfbh"] for p in heat)
    assert len(pipeline.platform.receipts()) == served
    retried = pipeline.metrics.registry.get_sample_value(
        "ubridge_payment_retries_total", {"peer": "yantai-water", "reason": "backpressure"}
    )
    assert retried is not None and retried > 0


def test_the_configured_stages_push_pull_post_and_receipt(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Wired by configuration: pushed and pulled payments are posted and receipted; a bad pulled one is a letter."""
    utilities = {utility: UtilitySimulator(utility, token=f"token-{utility}") for utility in UTILITIES}
    urls = {utility: simulator.start() for utility, simulator in utilities.items()}
    platform = PaymentPlatform(token=RECEIPT_TOKEN)
    platform_url = platform.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    settings = settings_for(
        kafka_bootstrap,
        unique_prefix,
        utilities=[utility_config(u, url) for u, url in urls.items()],
        sources={
            "aishandong_payments_pull": {"base_url": platform_url, "token": RECEIPT_TOKEN, "poll_interval_s": 0.2}
        },
        payments={
            "gateway": {"port": port, "secret": SECRET},
            "acknowledgement": {"url": f"{platform_url}{RECEIPTS_PATH}", "token": RECEIPT_TOKEN},
            "retry": {"initial_backoff_s": 0.05, "max_backoff_s": 0.3, "max_attempts": 10},
        },
    )
    app = App(settings, only=["aishandong-payments", "aishandong-payments-pull", "payments"], serve_metrics=False)
    app.start()
    try:
        wait_until(app.ready, timeout_s=60, what="the payment stages to start")
        pushed, pulled = make_payments(4, seed=21, regions=["370602"]), make_payments(4, seed=22, regions=["370602"])
        platform.add([*pulled, {**pulled[0], "jfbh": "JF-BAD", "zq": "2026-13"}])
        results = push_payments(f"http://127.0.0.1:{port}{PAYMENTS_PATH}", SECRET, pushed)
        assert [r.status for r in results] == [202] * 4
        wait_until(lambda: len(platform.receipts()) >= 8, timeout_s=60, what="eight receipts")
        dlq = settings.dlq_topic("aishandong-payments-pull")
        wait_until(lambda: len(read_topic(kafka_bootstrap, dlq)) >= 1, timeout_s=30, what="the bad payment's letter")
        expected = sorted(p["jfbh"] for p in [*pushed, *pulled])
        assert sorted(r.payment_id for r in platform.receipts()) == expected
        assert (
            sorted(pid for s in utilities.values() for pid in (p.payment_id for p in s.payments.payments())) == expected
        )
        (letter,) = read_topic(kafka_bootstrap, dlq)
        assert (letter.key, error_context(letter.headers)["field"]) == (b"JF-BAD", "zq")
    finally:
        app.stop()
        assert app.wait(timeout_s=30)
        for simulator in utilities.values():
            simulator.stop()
        platform.stop()
