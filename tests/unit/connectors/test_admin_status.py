from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from connectors.admin.cli import table
from connectors.admin.status import Phase, StageState, StageStatus, state_of, status_key, with_staleness
from connectors.cli import _parser

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def status(stage: str, host: str, age_s: float) -> StageStatus:
    return StageStatus(stage=stage, host=host, pid=7, state="running", heartbeat_at=NOW - timedelta(seconds=age_s))


@pytest.mark.parametrize(
    ("phase", "paused", "expected"),
    [
        ("running", False, "running"),
        ("running", True, "paused"),
        ("restarting", True, "restarting"),
        ("fatal", False, "failed"),
        ("starting", True, "starting"),
        ("stopped", False, "stopped"),
    ],
)
def test_the_state_shown_follows_the_phase_and_the_pause(phase: Phase, paused: bool, expected: StageState) -> None:
    """Only a running stage shows paused; a fatally misconfigured one shows failed."""
    assert state_of(phase, paused=paused) == expected


def test_old_heartbeats_are_marked_stale_and_entries_ordered() -> None:
    """An entry whose heartbeat is older than the limit is stale; entries come by stage, then host."""
    views = with_staleness(
        [status("sink-a", "h2", 1), status("router", "h1", 20), status("sink-a", "h1", 15)],
        now=NOW,
        stale_after=timedelta(seconds=15),
    )
    assert [(v.stage, v.host, v.stale) for v in views] == [
        ("router", "h1", True),
        ("sink-a", "h1", False),
        ("sink-a", "h2", False),
    ]


def test_the_status_key_names_host_process_and_stage() -> None:
    """Each process owns its keys: <host>:<pid>/<stage>."""
    assert status_key("node-1", 42, "router") == b"node-1:42/router"


def test_the_stage_table_marks_stale_rows() -> None:
    """The CLI's table shows each column and marks a stale row in its state column."""
    rows = [{"stage": "router", "state": "running", "lag": 3.0, "stale": True, "last_error": None}]
    console = Console(width=120, record=True)
    console.print(table(rows, ("stage", "state", "lag", "last_error"), stale="stale"))
    text = console.export_text()
    assert "running (stale)" in text
    assert "3.0" in text


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (["pause", "--utility", "yantai-water"], "/admin/v1/stages/sink-yantai-water/pause"),
        (["resume", "sink-yantai-water"], "/admin/v1/stages/sink-yantai-water/resume"),
        (["restart", "router", "--reason", "new mapping"], "/admin/v1/stages/router/restart"),
    ],
)
def test_the_cli_names_a_stage_or_a_utilitys_sink(argv: list[str], path: str) -> None:
    """`--utility ID` stands for the sink-<ID> stage; the request goes to that stage's action."""
    args = _parser().parse_args(["admin", *argv])
    assert args.request(args)[:2] == ("POST", path)


def test_the_cli_wants_a_stage_or_a_utility_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    """Naming both a stage and a utility is a usage error."""
    with pytest.raises(SystemExit):
        _parser().parse_args(["admin", "pause", "router", "--utility", "yantai-water"])
    assert "not allowed with argument" in capsys.readouterr().err
