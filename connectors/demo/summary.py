"""The demo's closing tables: per utility and per stage, built from plain figures."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.table import Table


@dataclass(frozen=True)
class UtilityFigures:
    """What one utility's simulator and ubridge's metrics say after the run."""

    utility: str
    expected: int
    delivered: int
    missing: int
    unexpected: int
    resent: int
    retries: int
    dead_lettered: int
    latencies_s: Sequence[float]

    @property
    def exactly_once(self) -> bool:
        """Every expected task arrived, once, and nothing else did."""
        return self.missing == 0 and self.unexpected == 0 and self.delivered == self.expected


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f}"


def utility_table(rows: Sequence[UtilityFigures]) -> Table:
    """One row per utility: delivery counts, retries, dead letters and end-to-end latency."""
    table = Table(
        title="Deliveries per utility",
        caption="repeats: same revision sent again (idempotent); latency: published upstream → received",
    )
    table.add_column("utility")
    for name in ("expected", "delivered", "missing", "repeats", "retries", "DLQ", "p50 ms", "p99 ms"):
        table.add_column(name, justify="right")
    table.add_column("once", justify="center")
    for row in rows:
        table.add_row(
            row.utility,
            str(row.expected),
            str(row.delivered),
            str(row.missing),
            str(row.resent),
            str(row.retries),
            str(row.dead_lettered),
            _ms(percentile(row.latencies_s, 0.50)),
            _ms(percentile(row.latencies_s, 0.99)),
            "[green]yes[/]" if row.exactly_once else "[red]NO[/]",
        )
    return table


def stage_table(stages: Mapping[str, Mapping[str, float]]) -> Table:
    """One row per stage: records in, out, filtered and dead-lettered."""
    table = Table(title="Stages (records)")
    for name in ("stage", "in", "out", "filtered", "DLQ"):
        table.add_column(name, justify="left" if name == "stage" else "right")
    for stage, figures in stages.items():
        table.add_row(
            stage,
            *(f"{figures.get(k, 0):,.0f}" for k in ("in", "out", "filtered", "dead_lettered")),
        )
    return table


@dataclass(frozen=True)
class SlaFigures:
    """One utility's clocks against the policy limits, from the ledger's metrics."""

    utility: str
    open_tasks: int
    first_contact_met: int
    first_contact_breached: int
    total_met: int
    total_breached: int
    first_contact_p50_h: float | None
    provisional: int = 0

    @property
    def compliance(self) -> float | None:
        """Share of decided rules (first contact and total) that were met."""
        decided = self.first_contact_met + self.first_contact_breached + self.total_met + self.total_breached
        return None if decided == 0 else (self.first_contact_met + self.total_met) / decided


def sla_table(rows: Sequence[SlaFigures]) -> Table:
    """One row per utility: first-contact and completion clocks met or breached, in working time."""
    provisional = sum(row.provisional for row in rows)
    table = Table(
        title="SLA per utility (working time, Asia/Shanghai; limits from deploy/config/sla-policies.yaml)",
        caption=None
        if provisional == 0
        else f"{provisional} SLA events counted days of a year without the State Council's holiday notice: "
        "provisional calendar (ubridge calendar show <year>)",
    )
    table.add_column("utility")
    for name in ("open", "contact met", "contact breached", "p50 contact h", "done met", "done breached", "compliance"):
        table.add_column(name, justify="right")
    for row in rows:
        compliance = row.compliance
        table.add_row(
            row.utility,
            str(row.open_tasks),
            str(row.first_contact_met),
            str(row.first_contact_breached),
            "-" if row.first_contact_p50_h is None else f"{row.first_contact_p50_h:.1f}",
            str(row.total_met),
            str(row.total_breached),
            "-" if compliance is None else f"{100 * compliance:.1f}%",
        )
    return table
