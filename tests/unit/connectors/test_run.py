"""``ubridge run`` in the process that runs the stages."""

import gc
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import run as run_module
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


class _StartedApp:
    """Stands in for the stages: records what the collector had frozen when they started, then ends at once."""

    frozen_at_start: int | None = None

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        self.stop_event = threading.Event()
        self.failed = False

    def start(self) -> None:
        _StartedApp.frozen_at_start = gc.get_freeze_count()

    def stop(self) -> None:
        self.stop_event.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        return True


@pytest.mark.usefixtures("switch_interval")
def test_what_a_process_holds_once_its_stages_started_is_out_of_the_collectors_sight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After start-up the process's objects are frozen: full collections no longer walk them (pauses of 0.1-0.5 s)."""
    monkeypatch.setattr(run_module, "App", _StartedApp)
    monkeypatch.setattr(run_module, "_on_signals", lambda _target: None)
    gc.unfreeze()
    settings = parse_settings({"routing": {"service_areas": str(CONFIG / "service-areas.yaml")}})
    try:
        assert _run_app(settings, None, health_port_file=None) == 0
        assert _StartedApp.frozen_at_start == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
