"""Every Prometheus metric ubridge exports, in one place.

Labels come from small fixed sets (stage, utility, outcome, reason); never ids or personal data.
Each instance owns its collectors in the ``registry`` it is given, so tests use a fresh
``CollectorRegistry()``.

In a child of ``ubridge run`` (``PROMETHEUS_MULTIPROC_DIR`` set, :mod:`connectors.process_tree`) the values
also go to files the parent sums: counters and histograms add up, and each gauge says how its children's
values combine (``multiprocess_mode``: a stage lives in one child, so sums and maxima give its own value;
``ubridge_kafka_up`` takes the minimum, 0 as soon as one child reaches no broker).
"""

import platform

from prometheus_client import PLATFORM_COLLECTOR, CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.metrics import MetricWrapperBase

from connectors.runtime.build import VERSION

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def per_stage(metric: MetricWrapperBase) -> dict[str, float]:
    """A counter's or gauge's value per ``stage`` label, read from that metric alone.

    The stage-status heartbeat reads three metrics of every stage; the registry's ``get_sample_value`` would
    collect every metric of the process for each, the process collector's reads of /proc included.
    """
    samples = (sample for family in metric.collect() for sample in family.samples)
    return {sample.labels["stage"]: sample.value for sample in samples if not sample.name.endswith("_created")}


class Metrics:
    """The collectors of one ubridge process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # process_* (CPU, resident memory, open files) and python_info, as the default registry would have them
        ProcessCollector(registry=registry)
        registry.register(PLATFORM_COLLECTOR)
        self.build_info = Info("ubridge_build", "The running ubridge's version and Python.", registry=registry)
        self.build_info.info({"version": VERSION, "python": platform.python_version()})
        self.records_in = Counter(
            "ubridge_records_in_total", "Records a stage consumed or read.", ["stage"], registry=registry
        )
        self.records_out = Counter(
            "ubridge_records_out_total",
            "Records a stage produced or delivered.",
            ["stage"],
            registry=registry,
        )
        self.records_repaired = Counter(
            "ubridge_records_repaired_total",
            "Values a stage read other than as written (a landline, a withdrawn region code…); on the record too.",
            ["stage", "field", "kind"],
            registry=registry,
        )
        self.records_filtered = Counter(
            "ubridge_records_filtered_total",
            "Records a stage consumed and deliberately produced nothing for.",
            ["stage", "reason"],
            registry=registry,
        )
        self.records_dead_lettered = Counter(
            "ubridge_records_dead_lettered_total",
            "Records sent to a stage's dead-letter topic.",
            ["stage", "error_class"],
            registry=registry,
        )
        self.processing_seconds = Histogram(
            "ubridge_processing_seconds",
            "Time a stage spent on one record, delivery retries included.",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "ubridge_delivery_seconds",
            "Duration of one HTTP delivery attempt to a utility.",
            ["utility", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.delivery_retries = Counter(
            "ubridge_delivery_retries_total",
            "Delivery attempts that failed retriably and were tried again.",
            ["utility", "reason"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "ubridge_consumer_lag_records",
            "Records in the stage's assigned input partitions not yet consumed.",
            ["stage"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.source_cursor = Gauge(
            "ubridge_source_cursor",
            "Last committed cursor of a source, when numeric.",
            ["stage"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.intake_requests = Counter(
            "ubridge_intake_requests_total",
            "HTTP requests an intake (webhook, callback) answered, by status code.",
            ["stage", "status"],
            registry=registry,
        )
        self.source_held_rows = Gauge(
            "ubridge_source_held_rows",
            "Rows a source holds while their parent rows are missing.",
            ["stage"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.source_held_age = Gauge(
            "ubridge_source_held_age_seconds",
            "How long the oldest row a source holds has waited for its parent rows (0 when none is held).",
            ["stage"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.records_failed = Counter(
            "ubridge_records_failed_total",
            "Records dead-lettered after an unexpected exception (a bug or a value no code foresaw), by class.",
            ["stage", "error_class"],
            registry=registry,
        )
        self.stage_restarts = Counter(
            "ubridge_stage_restarts_total",
            "Times a failed stage was rebuilt and restarted inside its process.",
            ["stage"],
            registry=registry,
        )
        self.source_owner = Gauge(
            "ubridge_source_owner",
            "1 while this process holds a source's lease and runs it, 0 while it stands by.",
            ["stage"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.kafka_up = Gauge(
            "ubridge_kafka_up",
            "1 while the process reaches a Kafka broker of its bootstrap list, 0 while it reaches none.",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.tasks_unclocked = Counter(
            "ubridge_tasks_unclocked_total",
            "Tasks sent without a due instant because the working calendar could not compute it.",
            ["stage"],
            registry=registry,
        )
        self.calendar_official_until = Gauge(
            "ubridge_calendar_official_until",
            "Unix time at which the official holiday data ends (start of the first day it does not cover, "
            "Asia/Shanghai); after it, SLA clocks run on the provisional calendar from the statutory rules.",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.stage_up = Gauge(
            "ubridge_stage_up",
            "1 while a stage's loop runs, 0 once it stopped.",
            ["stage"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.stage_paused = Gauge(
            "ubridge_stage_paused",
            "1 while the control topic pauses the stage (ubridge admin pause) and it holds its input.",
            ["stage"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        # 爱山东 payments (connectors/payments): labels are the utility (peer) only, never the account or payer
        self.payments_received = Counter(
            "ubridge_payments_received_total", "Payments the delivery stage read.", registry=registry
        )
        self.payments_delivered = Counter(
            "ubridge_payments_delivered_total", "Payments a utility posted (入账).", ["utility"], registry=registry
        )
        self.payments_acknowledged = Counter(
            "ubridge_payments_acknowledged_total",
            "Payments whose utility receipt 爱山东 took back.",
            ["utility"],
            registry=registry,
        )
        self.payment_amount_fen = Counter(
            "ubridge_payment_amount_fen_total", "Fen posted at each utility.", ["utility"], registry=registry
        )
        self.payment_retries = Counter(
            "ubridge_payment_retries_total",
            "Retried payment posts, by peer (a utility, or aishandong) and reason.",
            ["peer", "reason"],
            registry=registry,
        )
        # External-works permits (connectors/permits): labels are the department and the state, never the project
        self.permits_filed = Counter(
            "ubridge_permits_filed_total",
            "Permits filed with a department, or recorded as 告知承诺 (department commitment), by department.",
            ["department"],
            registry=registry,
        )
        self.permit_states = Counter(
            "ubridge_permit_states_total",
            "Permit state changes the departments reported (ACCEPTED, MORE_REQUIRED, GRANTED, REFUSED).",
            ["department", "state"],
            registry=registry,
        )
        self.permit_decisions = Counter(
            "ubridge_permit_decisions_total",
            "Permits decided (GRANTED or REFUSED), by department and on_time: yes within the department's working "
            "days (补正 waits left out), no past them, none where no rule sets a deadline.",
            ["department", "on_time"],
            registry=registry,
        )
        self.permit_retries = Counter(
            "ubridge_permit_retries_total",
            "Retried permit posts, by peer (the approval system, or a utility told of a permit's state) and reason.",
            ["peer", "reason"],
            registry=registry,
        )
        self.survey_retries = Counter(
            "ubridge_survey_retries_total",
            "Retried survey notices, by utility and reason.",
            ["peer", "reason"],
            registry=registry,
        )
        self.permits_overdue = Gauge(
            "ubridge_permits_overdue",
            "Permits undecided past the department's deadline (001: 3个工作日内办结), by department.",
            ["department"],
            multiprocess_mode="livemax",
            registry=registry,
        )
