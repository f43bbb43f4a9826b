"""loadtests.measured: the load average every report quotes."""

import os
import re
from pathlib import Path

import pytest

from loadtests.measured import load_average, write_report

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_load_average_as_uptime_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (1.234, 0.5, 12.0))
    assert load_average() == "1.23 0.50 12.00"
    assert load_average(one_minute=True) == "1.23"


def test_no_other_module_has_a_load_average_helper_of_its_own() -> None:
    found = [
        str(path.relative_to(REPO_ROOT))
        for folder in ("loadtests", "tests", "shared", "compose", "patterns")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if re.search(r"(?m)^\s*def _?load_average\(", path.read_text())
    ]
    assert found == ["loadtests/measured.py"]


def test_write_report_makes_the_folder_and_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_report(tmp_path / "new" / "report.md", "# figures\n")
    assert (tmp_path / "new" / "report.md").read_text() == "# figures\n"
    assert capsys.readouterr().out == "# figures\n\n"
