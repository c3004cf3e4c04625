"""Inline SVG charts for the supervision pages, drawn on the server (no JavaScript).

Each function returns SVG markup, its text escaped, to be placed in a page as it is.

Example:
    >>> outcome_bars(figures.by_utility)     # per group: tasks met and breached (all rules summed)
    >>> stage_bars(group.stages)             # per stage: median working hours, p90 marked
"""

from collections.abc import Sequence
from typing import Final

from markupsafe import Markup, escape

from connectors.supervision.labels import STAGE_LABELS
from routing.supervision import GroupFigures, StageTime

MET_COLOUR: Final = "#2e7d32"
BREACHED_COLOUR: Final = "#c62828"
MEDIAN_COLOUR: Final = "#1565c0"
_LABEL_W: Final = 190
_BAR_W: Final = 360
_ROW_H: Final = 26
_TOP: Final = 24


def outcome_bars(groups: Sequence[GroupFigures]) -> Markup:
    """Per group a bar of rule clocks met (green) followed by those breached (red), with the numbers."""
    totals = [(g.label, sum(r.met for r in g.rules), sum(r.breached for r in g.rules)) for g in groups]
    widest = max((met + breached for _, met, breached in totals), default=0) or 1
    rows = []
    for i, (label, met, breached) in enumerate(totals):
        y = _TOP + i * _ROW_H
        met_w, breached_w = met / widest * _BAR_W, breached / widest * _BAR_W
        rows.append(
            f'<text x="{_LABEL_W - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="met" x="{_LABEL_W}" y="{y}" width="{met_w:.1f}" height="18" fill="{MET_COLOUR}">'
            f"<title>按时 {met}</title></rect>"
            f'<rect class="breached" x="{_LABEL_W + met_w:.1f}" y="{y}" width="{breached_w:.1f}" height="18" '
            f'fill="{BREACHED_COLOUR}"><title>超时 {breached}</title></rect>'
            f'<text x="{_LABEL_W + met_w + breached_w + 6:.1f}" y="{y + 14}">按时 {met} / 超时 {breached}</text>'
        )
    legend = _legend(((MET_COLOUR, "按时"), (BREACHED_COLOUR, "超时")))
    return _svg("按时与超时（各规则计时）", legend + "".join(rows), _TOP + len(totals) * _ROW_H + 8)


def stage_bars(stages: Sequence[StageTime]) -> Markup:
    """Per stage a bar of the median working hours, a tick at the 90th percentile."""
    widest = max((s.p90_h for s in stages), default=0.0) or 1.0
    rows = []
    for i, stage in enumerate(stages):
        y = _TOP + i * _ROW_H
        median_w, p90_x = stage.median_h / widest * _BAR_W, _LABEL_W + stage.p90_h / widest * _BAR_W
        label = STAGE_LABELS.get(stage.stage, stage.stage)
        rows.append(
            f'<text x="{_LABEL_W - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="median" x="{_LABEL_W}" y="{y}" width="{median_w:.1f}" height="18" fill="{MEDIAN_COLOUR}">'
            f"<title>中位数 {stage.median_h:.2f} 小时</title></rect>"
            f'<line x1="{p90_x:.1f}" x2="{p90_x:.1f}" y1="{y - 2}" y2="{y + 20}" stroke="#000" stroke-width="2">'
            f"<title>P90 {stage.p90_h:.2f} 小时</title></line>"
            f'<text x="{p90_x + 6:.1f}" y="{y + 14}">{stage.median_h:.1f} / {stage.p90_h:.1f} h</text>'
        )
    legend = _legend(((MEDIAN_COLOUR, "中位数"), ("#000", "P90")))
    return _svg("各环节用时（工作小时）", legend + "".join(rows), _TOP + len(stages) * _ROW_H + 8)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return "".join(
        f'<rect x="{_LABEL_W + i * 90}" y="2" width="12" height="12" fill="{colour}"/>'
        f'<text x="{_LABEL_W + i * 90 + 16}" y="13">{escape(name)}</text>'
        for i, (colour, name) in enumerate(items)
    )


def _svg(title: str, body: str, height: int) -> Markup:
    width = _LABEL_W + _BAR_W + 170
    return Markup(  # noqa: S704 - every text inside was escaped above
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" font-size="12"><title>{escape(title)}</title>{body}</svg>'
    )
