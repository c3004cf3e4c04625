from pathlib import Path

import pytest
import yaml

from connectors.cli import main
from tests.support import ROOT

CALENDAR = ROOT / "deploy" / "config" / "calendar.yaml"


def notice_2027(tmp_path: Path) -> Path:
    document = yaml.safe_load(CALENDAR.read_text(encoding="utf-8"))
    document["overrides"] = {2027: {"holidays": ["2027-01-01", "2027-02-05", "2027-02-08"], "workdays": ["2027-02-20"]}}
    path = tmp_path / "calendar.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_show_2027_lists_the_provisional_days_off_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    """`ubridge calendar show 2027` prints 春节 from 除夕 (Feb 5) and National Day, each provisional, and the rules."""
    assert main(["calendar", "show", "2027"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("│ 2027-")]
    assert (24, True, True) == (len(rows), all("provisional" in row for row in rows), "make-up working days" in out)
    assert ["2027-02-05", "2027-10-07"] == [rows[1].split()[1], rows[-1].split()[1]]
    assert "国务院令第795号" in out and "243 working days in 2027" in out


def test_show_2026_marks_official_days_and_make_up_days(capsys: pytest.CaptureFixture[str]) -> None:
    """2026 comes from chinesecalendar: its make-up Saturday Feb 14 is listed as a working day, official."""
    assert main(["calendar", "show", "2026"]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("│ 2026-02-14")]
    assert ("make-up working day" in row, "official" in row, "runs to 2026-12-31" in out) == (True, True, True)


def test_show_with_the_notice_added_reads_overridden(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With overrides.2027 in the calendar file, 2027 reads overridden, its make-up Saturday included."""
    assert main(["calendar", "show", "2027", "--calendar", str(notice_2027(tmp_path))]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("│ 2027-")]
    assert (4, True, True) == (len(rows), all("overridden" in row for row in rows), "make-up" in rows[-1])


def test_show_a_year_nothing_covers_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """2003 has no schedule: exit 2, naming the key to add."""
    assert main(["calendar", "show", "2003"]) == 2
    assert "add overrides.2003" in capsys.readouterr().err
