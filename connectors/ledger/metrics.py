"""Prometheus collectors of the SLA ledger (the process-wide ones are in ``connectors.runtime.metrics``).

Labels come from small fixed sets only: utility ids (configured), task stages, rule kinds
(``first_contact``, ``total``, ``step``) and SLA event kinds; never task ids.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

FIRST_CONTACT_BUCKETS = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0)


class LedgerMetrics:
    """The ledger stage's collectors, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.open_tasks = Gauge(
            "ubridge_ledger_open_tasks",
            "Open tasks in the ledger's owned partitions, by utility and current stage.",
            ["utility", "stage"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.sla_events = Counter(
            "ubridge_sla_events_total",
            "SLA events emitted, by clock kind (first_contact, total, step) and kind (WARNING, BREACHED, MET, "
            "REJECTED, CANCELLED).",
            ["utility", "rule_kind", "kind"],
            registry=registry,
        )
        self.provisional_events = Counter(
            "ubridge_sla_events_provisional_total",
            "SLA events whose clock ran over a year with only a provisional holiday schedule (no notice yet).",
            ["utility"],
            registry=registry,
        )
        self.sla_breaches = Counter(
            "ubridge_sla_breaches_total",
            "SLA limits breached (BREACHED events of any rule).",
            ["utility"],
            registry=registry,
        )
        self.first_contact_hours = Histogram(
            "ubridge_time_to_first_contact_working_hours",
            "Working hours from the application's filing (else the task's creation) to the first contact.",
            ["utility"],
            buckets=FIRST_CONTACT_BUCKETS,
            registry=registry,
        )
        self.unclocked_tasks = Gauge(
            "ubridge_ledger_unclocked_tasks",
            "Tasks in the owned partitions whose clocks cannot be computed (no holiday schedule for a year).",
            ["utility"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.expired_entries = Counter(
            "ubridge_ledger_expired_total",
            "Closed ledger entries dropped after their retention (a tombstone on the changelog for each).",
            registry=registry,
        )
        self.held_statuses = Gauge(
            "ubridge_ledger_held_statuses",
            "Statuses held because their task's RECEIVED was not seen yet.",
            multiprocess_mode="livesum",
            registry=registry,
        )


def rule_kind(rule: str) -> str:
    """The metric label of an SLA rule: ``step:SURVEYED`` → ``step``."""
    return rule.split(":", 1)[0]
