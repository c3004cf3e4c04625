"""Prometheus collectors of the complaint loop (the process-wide ones are in ``connectors.runtime.metrics``).

Labels come from small fixed sets only: configured utility ids, six-digit district codes, order states,
escalation reasons and visit results; never order ids. The satisfaction gauges are the current month's
(Asia/Shanghai, by the stage's clock), per utility and per district (``level``), set from the ledger's visits.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge


class ComplaintMetrics:
    """The complaint stage's collectors, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.orders = Gauge(
            "ubridge_complaint_orders",
            "Work orders in the complaint loop by utility and state (open, clearing = on the 清零 ledger, "
            "cleared = struck off it, closed).",
            ["utility", "state"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.overdue = Gauge(
            "ubridge_complaint_orders_overdue",
            "Open work orders past their answer deadline unanswered, or past their clearing deadline.",
            ["utility"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.escalations = Counter(
            "ubridge_complaint_escalations_total",
            "Escalations (督办) raised, by reason (VERIFY_OVERDUE, ANSWER_OVERDUE, CLEARING_OVERDUE).",
            ["utility", "reason"],
            registry=registry,
        )
        self.visits = Counter(
            "ubridge_complaint_visits_total",
            "Return visits (回访) recorded, by result.",
            ["utility", "district", "result"],
            registry=registry,
        )
        self.answers = Counter(
            "ubridge_complaint_answers_total",
            "Answers (反馈) for the hotline platform: sent, failed (dead-lettered) or unsent (no platform configured).",
            ["utility", "outcome"],
            registry=registry,
        )
        self.satisfaction = Gauge(
            "ubridge_complaint_satisfaction_ratio",
            "This month's satisfaction rate from return visits (satisfied / counted answers), per utility or district.",
            ["level", "group"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.score = Gauge(
            "ubridge_complaint_satisfaction_score",
            "This month's weighted satisfaction score (0-100, weights of satisfaction.yaml), per utility or district.",
            ["level", "group"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.counted = Gauge(
            "ubridge_complaint_visits_counted",
            "This month's return visits counted in the rate (unreachable users are not), per utility or district.",
            ["level", "group"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.target = Gauge(
            "ubridge_complaint_satisfaction_target_ratio",
            "The lowest acceptable satisfaction rate (002: 99.5%).",
            multiprocess_mode="max",
            registry=registry,
        )
