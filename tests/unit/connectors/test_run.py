"""``ubridge run`` in the process that runs the stages."""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.registry import stage_specs
from connectors.run import SWITCH_INTERVAL_S, _run_app, layout
from connectors.settings import parse_settings

CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "config"


@pytest.fixture
def switch_interval() -> Iterator[None]:
    """Put the interpreter's switch interval back as it was."""
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("switch_interval")
def test_a_process_running_stages_hands_the_gil_over_every_twenty_milliseconds() -> None:
    """The stages' process takes the longer switch interval before anything else (here: an unknown stage, exit 2)."""
    sys.setswitchinterval(0.005)
    settings = parse_settings({"routing": {"service_areas": str(CONFIG / "service-areas.yaml")}})
    assert _run_app(settings, ["no-such-stage"], health_port_file=None) == 2
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    assert SWITCH_INTERVAL_S == pytest.approx(0.02)


def test_on_two_cores_the_query_account_source_runs_in_a_process_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """``processes.count: auto`` on two cores: the polling source alone, the transforms over three more processes."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    settings = parse_settings(
        {
            "routing": {"service_areas": str(CONFIG / "service-areas.yaml")},
            "sources": {"gonggai_spgl": {"url": "sqlite:///exchange.db"}},
        }
    )
    groups = layout(settings, None)
    assert len(groups) == 4
    assert ["gonggai-spgl"] in groups
    assert sorted(stage for group in groups for stage in group) == sorted(s.name for s in stage_specs(settings))
