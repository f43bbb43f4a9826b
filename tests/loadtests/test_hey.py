"""hey's command line and its CSV read back; the docker-proxy and pinning helpers of the
overload run (no Docker, no hey run)."""

import os
from pathlib import Path

import pytest

from loadtests import hey
from loadtests.bench.overload import _flag, pin_process, proxy_pids
from loadtests.openloop import LoadError

URL = "http://127.0.0.1:18210/predict"
CSV = """response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset
0.0071,0.0002,0.0000,0.0000,0.0067,0.0001,200,0.4030
0.0012,0.0001,0.0000,0.0000,0.0010,0.0001,503,0.4100
0.0040,0.0001,0.0000,0.0000,0.0038,0.0001,200,1.2033

"""


@pytest.fixture
def hey_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hey.shutil, "which", lambda name: f"/usr/bin/{name}")


def test_csv_rows_are_tallied_by_the_second_sent_with_status_and_latency() -> None:
    tally = hey.parse_csv(CSV)
    assert tally.per_second == {0: {200: 1, 503: 1}, 1: {200: 1}}
    assert tally.accepted_ms == pytest.approx([7.1, 4.0])
    assert tally.shed_ms == pytest.approx([1.2])
    summary = tally.summary(2.0)
    assert summary["offered_per_s"] == 1.5  # what hey listed, over the run's 2 s
    assert summary["goodput_per_s"] == 1.0


def test_text_that_is_not_hey_s_csv_is_refused_with_its_line() -> None:
    with pytest.raises(LoadError, match="not hey's CSV output"):
        hey.parse_csv("Summary:\n  Total: 1 secs\n")
    with pytest.raises(LoadError, match="not hey's CSV output"):
        hey.parse_csv("")
    with pytest.raises(LoadError, match="line 3 is not a request"):
        hey.parse_csv(CSV.splitlines()[0] + "\n0.1,0,0,0,0,0,200,0.2\n0.1,0,0,0,0,0,oops,0.3\n")


@pytest.mark.usefixtures("hey_on_path")
def test_the_rate_is_shared_by_the_workers_and_hey_runs_on_its_core() -> None:
    line = hey.command(URL, b"{}", connections=256, seconds=10, rate=5120.0, core=0)
    assert line[:6] == ["taskset", "--cpu-list", "0", "/usr/bin/hey", "-cpus", "1"]
    assert line[line.index("-c") + 1] == "256"
    assert line[line.index("-q") + 1] == "20"  # per worker: 5120 / 256
    assert line[line.index("-z") + 1] == "10s"
    assert line[line.index("-o") + 1] == "csv"
    assert line[-1] == URL


@pytest.mark.usefixtures("hey_on_path")
def test_without_a_rate_hey_is_a_closed_loop_and_without_a_core_not_pinned() -> None:
    line = hey.command(URL, b"{}", connections=8, seconds=3.5, rate=0.0, core=None)
    assert line[0] == "/usr/bin/hey"
    assert "-q" not in line
    assert line[line.index("-z") + 1] == "3.5s"


@pytest.mark.usefixtures("hey_on_path")
def test_loads_go_to_127_0_0_1_only_and_stay_bounded() -> None:
    with pytest.raises(LoadError, match=r"127\.0\.0\.1 only"):
        hey.command("http://example.com/", b"{}", connections=1, seconds=1, rate=1, core=None)
    with pytest.raises(LoadError, match="seconds"):
        hey.command(URL, b"{}", connections=1, seconds=10**4, rate=1, core=None)
    with pytest.raises(LoadError, match="connections"):
        hey.command(URL, b"{}", connections=0, seconds=1, rate=1, core=None)


def test_a_missing_hey_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hey.shutil, "which", lambda name: None)
    with pytest.raises(LoadError, match="apt-get install hey"):
        hey.require_hey()


def _process(proc: Path, pid: int, *args: str) -> None:
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")


def test_the_docker_proxy_of_a_port_is_found_by_its_host_port(tmp_path: Path) -> None:
    proxy = "/usr/sbin/docker-proxy"
    _process(tmp_path, 10, proxy, "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", "18210")
    _process(tmp_path, 11, proxy, "-proto", "tcp", "-host-port", "18211")
    _process(tmp_path, 12, "/usr/bin/python3", "-host-port", "18210")
    (tmp_path / "self").mkdir()
    assert proxy_pids(18210, tmp_path) == [10]
    assert proxy_pids(9999, tmp_path) == []
    assert _flag([b"-host-port"], b"-host-port") is None  # a flag without its value


def test_pinning_a_process_pins_every_thread_of_it() -> None:
    allowed = os.sched_getaffinity(0)
    core = min(allowed)
    pin_process(os.getpid(), core)
    try:
        assert os.sched_getaffinity(0) == {core}
    finally:
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            os.sched_setaffinity(int(task.name), allowed)


@pytest.fixture
def fake_hey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for hey on the PATH: lists one 200 per worker (-c) and logs its rate (-q);
    exits 1 when the URL ends in /fail."""
    log = tmp_path / "calls"
    script = tmp_path / "hey"
    script.write_text(
        "#!/bin/sh\n"
        "c=0; q=none; for a; do case $prev in -c) c=$a;; -q) q=$a;; esac; prev=$a; done\n"
        f'echo "$c $q" >> {log}\n'
        'case $a in */fail) echo "dial refused" >&2; exit 1;; esac\n'
        f'echo "{",".join(hey.COLUMNS)}"\n'
        'i=0; while [ $i -lt $c ]; do echo "0.001,0,0,0,0.001,0,200,0.5"; i=$((i+1)); done\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    return log


def test_a_load_is_shared_by_processes_and_their_answers_merged(fake_hey: Path) -> None:
    tally = hey.run(URL, b"{}", connections=10, seconds=1, rate=100.0, processes=4)
    assert tally.statuses == {200: 10}
    calls = sorted(fake_hey.read_text().split("\n")[:-1])
    assert calls == ["2 10", "2 10", "3 10", "3 10"]  # -c workers, -q 10 req/s each


def test_a_failing_hey_is_a_load_error_with_its_words(fake_hey: Path) -> None:
    with pytest.raises(LoadError, match="dial refused"):
        hey.run("http://127.0.0.1:1/fail", b"{}", connections=2, seconds=1, processes=2)
    with pytest.raises(LoadError, match="3 hey processes for 2 connections"):
        hey.run(URL, b"{}", connections=2, seconds=1, processes=3)


def test_processes_start_a_worker_s_interval_over_their_number_apart() -> None:
    assert hey.stagger(256, 10_000.0, 16) == pytest.approx(0.0016)
    assert hey.stagger(256, 0.0, 16) == 0.0  # a closed loop: no interval


def test_hey_runs_with_a_lazier_garbage_collector(fake_hey: Path, tmp_path: Path) -> None:
    """hey keeps every request's figures; Go's default collector stalls its workers."""
    script = tmp_path / "hey"
    script.write_text(
        script.read_text().replace("#!/bin/sh\n", f'#!/bin/sh\necho "$GOGC" > {tmp_path}/gogc\n')
    )
    hey.run(URL, b"{}", connections=1, seconds=1, processes=1)
    assert (tmp_path / "gogc").read_text().strip() == hey.GOGC
