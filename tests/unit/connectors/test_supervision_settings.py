import io
from dataclasses import replace

import pytest
from openpyxl import load_workbook

from connectors.config_ports import listeners, port_clashes
from connectors.registry import stage_specs
from connectors.settings import ConfigError, parse_settings
from connectors.supervision.stage import STAGE
from connectors.supervision.workbook import write_workbook
from routing.monthly import monthly
from routing.supervision import ComplaintFigures, with_complaints
from tests.supervision_data import BOOK, CALENDAR, november, sh

TOKEN = "department-token-0123456789"


def settings(**supervision: object):  # type: ignore[no-untyped-def]
    return parse_settings({"routing": {"service_areas": "-"}, "supervision": supervision}, origin="u.yaml")


def test_a_short_supervision_token_is_refused_naming_the_key() -> None:
    """The department's token needs 16 characters; the error names supervision.token."""
    with pytest.raises(ConfigError, match=r"u.yaml: supervision.token: .*at least 16 characters"):
        settings(token="short")
    with pytest.raises(ConfigError, match=r"u.yaml: supervision.token: Field required"):
        settings(port=8095)


def test_the_view_is_a_stage_only_when_enabled() -> None:
    """A supervision section adds the supervision-view stage; enabled: false leaves it out."""
    assert STAGE in {spec.name for spec in stage_specs(settings(token=TOKEN))}
    assert STAGE not in {spec.name for spec in stage_specs(settings(token=TOKEN, enabled=False))}
    spec = next(spec for spec in stage_specs(settings(token=TOKEN)) if spec.name == STAGE)
    assert (spec.dead_letters, spec.pausable) == (False, False)


def test_the_views_port_may_not_be_another_listeners() -> None:
    """supervision.port on the metrics port is a clash naming supervision.port."""
    document = {
        "routing": {"service_areas": "-"},
        "observability": {"metrics_port": 9464},
        "supervision": {"token": TOKEN, "port": 9464},
    }
    problems = port_clashes(listeners(parse_settings(document)), "u.yaml")
    assert [problem.key for problem in problems] == ["supervision.port"]


def test_the_workbook_lists_each_breached_rule_and_adds_complaint_columns_when_present() -> None:
    """One row per breached rule of a task; the complaint columns appear only with complaint figures."""
    report = monthly(november(), BOOK, CALENDAR, month="2026-11", now=sh(12, 10))
    plain = io.BytesIO()
    write_workbook(report, plain)
    book = load_workbook(plain)
    rows = [row[:1] + row[6:8] for row in book["超时清单"].iter_rows(min_row=2, values_only=True)]
    assert rows == [
        ("yantai-gas-00004", "yantai-004-connection", "超时"),
        ("yantai-water-00002", "shandong-000-first-contact", "超时"),
        ("yantai-water-00003", "shandong-000-first-contact", "超时"),
        ("yantai-water-00003", "yantai-004-connection", "超时"),
    ]
    assert book["单位"].max_column == 8
    complaints = ComplaintFigures(open=1, overdue=0, cleared=3, satisfaction=1.0)
    richer = replace(report, figures=with_complaints(report.figures, {("utility", "yantai-gas"): complaints}))
    stream = io.BytesIO()
    write_workbook(richer, stream)
    units = list(load_workbook(stream)["单位"].iter_rows(min_row=2, values_only=True))
    assert units[0][8:] == ("投诉办理中", "投诉逾期", "已清零", "满意度", "满意度分值")
    assert next(row for row in units if row[0] == "yantai-gas")[8:] == (1, 0, 3, 1, None)
    assert next(row for row in units if row[0] == "yantai-water")[8:] == (None, None, None, None, None)
