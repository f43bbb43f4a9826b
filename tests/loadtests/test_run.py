"""The run wrapper: Locust's command line and the exit code policy (Locust faked)."""

import subprocess
from pathlib import Path
from typing import Any

import pytest

from loadtests import run


def test_locust_command() -> None:
    args, extra = run._parse_args(["--host", "http://api:8080", "--out", "r/x", "--processes", "2"])
    command = run.locust_command(args, extra)
    assert command[1:5] == ["-m", "locust", "-f", str(run.LOCUSTFILE)]
    text = " ".join(command)
    for part in (
        "--headless",
        "--host http://api:8080",
        "--users 16",
        "--run-time 60s",
        "--csv r/x",
        "--html r/x.html",
    ):
        assert part in text
    assert command[-2:] == ["--processes", "2"]


@pytest.mark.parametrize(
    ("locust_code", "wrote_csv", "threshold", "expected"),
    [
        (0, True, [], 0),
        (1, True, [], 1),  # without a threshold, Locust's own verdict
        (1, True, ["--max-failure-pct", "5"], 0),
        (1, True, ["--max-failure-pct", "1"], 1),
        (1, False, [], 1),  # Locust never started: no (fresh) CSV
    ],
)
def test_exit_code(
    *,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    stats_csv,
    locust_code: int,
    wrote_csv: bool,
    threshold: list[str],
    expected: int,
) -> None:
    def fake_locust(command: list[str], **_: Any) -> subprocess.CompletedProcess:
        if wrote_csv:
            stats_csv.write(command[command.index("--csv") + 1], stats_csv.PREDICT, stats_csv.TOTAL)
        return subprocess.CompletedProcess(command, locust_code)

    monkeypatch.setattr(run.subprocess, "run", fake_locust)
    out = tmp_path / "results" / "web-single"
    out.parent.mkdir()
    Path(f"{out}_stats.csv").write_text("stale")
    assert run.main(["--host", "http://h", "--out", str(out), *threshold]) == expected
    assert Path(f"{out}_summary.json").is_file() == wrote_csv
