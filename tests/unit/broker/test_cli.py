import argparse
from pathlib import Path

import pytest

from connectors.broker import cli
from connectors.broker.local_kafka import BrokerError, BrokerInfo, PrerequisiteError


def run(*argv: str) -> int:
    """Parse ``argv`` as `ubridge` would and run the chosen handler."""
    parser = argparse.ArgumentParser(prog="ubridge")
    register_into = parser.add_subparsers(dest="command", required=True)
    cli.register(register_into)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_status_of_an_empty_home_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`status` says stopped and exits 3 when no broker runs."""
    assert cli.EXIT_STOPPED == run("broker", "status", "--home", str(tmp_path))
    assert capsys.readouterr().out.startswith("stopped")


def test_start_prints_bootstrap_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`start` ends its output with a machine-readable `bootstrap=` line and exits 0."""
    info = BrokerInfo(bootstrap="127.0.0.1:9092", pid=42, home=tmp_path)
    monkeypatch.setattr(cli, "start_broker", lambda home, *, port, progress, sasl_users, super_users: info)
    assert 0 == run("broker", "start", "--home", str(tmp_path), "--port", "9092")
    assert "bootstrap=127.0.0.1:9092" == capsys.readouterr().out.splitlines()[-1]


@pytest.mark.parametrize(
    ("error", "code"), [(PrerequisiteError("Java 17 or newer is required"), 2), (BrokerError("timed out"), 1)]
)
def test_start_failure_is_one_line(
    error: BrokerError,
    code: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A failed start prints one `ubridge:` line to stderr, no traceback; missing tools exit 2."""

    def fail(home: Path, *, port: int | None, progress: object, sasl_users: object, super_users: object) -> BrokerInfo:
        raise error

    monkeypatch.setattr(cli, "start_broker", fail)
    assert code == run("broker", "start", "--home", str(tmp_path))
    assert [f"ubridge: {error}"] == capsys.readouterr().err.splitlines()


def test_stop_without_broker_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`stop` on a home with no broker is not an error."""
    assert 0 == run("broker", "stop", "--home", str(tmp_path))
    assert "no broker was running" in capsys.readouterr().out


def test_the_authorizer_needs_the_sasl_ssl_listener(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--authorizer` alone is refused in one line: it authorizes SASL users, and there would be none."""
    assert run("broker", "start", "--home", str(tmp_path), "--authorizer") == 1
    assert capsys.readouterr().err.splitlines() == ["ubridge: --authorizer needs --sasl-ssl (it authorizes SASL users)"]
