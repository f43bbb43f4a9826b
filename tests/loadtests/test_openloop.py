"""The open-loop generator's bookkeeping, and a short run against a local server."""

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from loadtests.bench.overload import (
    FRONT_CPU_SHARES,
    Stack,
    _cores,
    main,
    measure_capacities,
    memory_bytes,
    shedding_settings,
)
from loadtests.bench.overload_report import (
    READING_MARKER,
    _capacities,
    cpu_per,
    edge_refusal_cost,
    goals,
    keep_reading,
    markdown,
)
from loadtests.openloop import (
    NO_ANSWER,
    NOT_SENT,
    LoadError,
    Tally,
    check_load,
    check_url,
    open_loop,
    percentile,
)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.99) is None


def test_tally_counts_by_second_and_keeps_latencies_by_kind() -> None:
    tally = Tally()
    tally.add(0, 200, 0.002)
    tally.add(0, 503, 0.0005)
    tally.add(1, 200, 0.004)
    tally.add(1, NO_ANSWER, None)
    tally.add(1, NOT_SENT, None)
    assert tally.per_second[0] == {200: 1, 503: 1}
    assert tally.accepted_ms == pytest.approx([2.0, 4.0])
    assert tally.shed_ms == pytest.approx([0.5])
    summary = tally.summary(2.0)
    assert summary["offered_per_s"] == 2.0  # four sent (not the one never sent) over 2 s
    assert summary["goodput_per_s"] == 1.0
    assert summary["accepted_p99_ms"] == pytest.approx(4.0)
    assert summary["shed_p99_ms"] == pytest.approx(0.5)
    assert summary["statuses"] == {"not sent": 1, "no answer": 1, "200": 2, "503": 1}


def test_merge_adds_another_processes_tally() -> None:
    one, two = Tally(), Tally()
    one.add(0, 200, 0.001)
    two.add(0, 200, 0.003)
    two.add(3, 503, 0.001)
    two.late = 2
    one.merge(two)
    assert one.statuses == {200: 2, 503: 1}
    assert one.per_second[0][200] == 2
    assert len(one.accepted_ms) == 2
    assert one.late == 2


def test_only_127_0_0_1_and_bounded_loads() -> None:
    assert check_url("http://127.0.0.1:8000/predict")
    for url in ("http://example.com/predict", "https://127.0.0.1/x", "http://localhost:80/"):
        with pytest.raises(LoadError, match=r"127\.0\.0\.1 only"):
            check_url(url)
    for rate, seconds in ((0, 1), (10**6, 1), (10, 0), (10, 10**5)):
        with pytest.raises(LoadError):
            check_load(rate, seconds)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A local server answering 200 and 503 in turn, each after 50 ms."""
    calls = 0

    async def predict(_: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        status = 200 if calls % 2 else 503
        await asyncio.sleep(0.05)
        return web.json_response({}, status=status)

    app = web.Application()
    app.router.add_post("/predict", predict)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/predict"))


async def test_every_due_request_is_sent_and_tallied(server: str) -> None:
    tally = await open_loop(server, b"{}", rate=100, seconds=1.0)
    assert tally.statuses == {200: 50, 503: 50}
    assert min(tally.accepted_ms) >= 50


async def test_past_max_outstanding_requests_are_counted_not_queued(server: str) -> None:
    # 100/s answered after 50 ms: about 5 wait at once, so a cap of 2 leaves some unsent.
    tally = await open_loop(server, b"{}", rate=100, seconds=1.0, max_outstanding=2)
    assert tally.statuses[NOT_SENT] > 0
    assert sum(tally.statuses.values()) == 100


def test_memory_figures_of_docker_stats() -> None:
    assert memory_bytes("45.5MiB ") == 45.5 * 2**20
    assert memory_bytes("1.2GiB") == 1.2 * 2**30
    with pytest.raises(ValueError, match="docker stats"):
        memory_bytes("--")


def test_the_report_shows_each_run_and_the_goals_of_each_shedding() -> None:
    run = {
        "offered_per_s": 200.0, "goodput_per_s": 95.0, "accepted_p50_ms": 1.0,
        "accepted_p99_ms": 2.0, "shed_p99_ms": 1.0,
        "statuses": {"200": 95, "503": 5}, "load_average": "1.00 0.50 0.20",
    }  # fmt: skip
    at_80 = run | {"offered_per_s": 80.0, "statuses": {"200": 80}}
    settings = [{"name": "count 8"}, {"name": "delay 5 ms, cap 64"}, {"name": "none"}]
    result = {
        "pattern": "sync", "date": "2026-12-03 08:00 UTC", "capacity": 100.0,
        "capacity_how": "given", "settings": settings, "seconds": 30,
        "generator": "hey, 256 connections", "cores": {"stack": 1, "load": 0},
        "api_cpus": 0.5, "cpu_period_us": 10000,
        "load_average_before": "0.10 0.10 0.10", "load_average_after": "1.00 0.50 0.20",
        "runs": [
            run | {"shedding": "count 8", "load": "80%", "rate": 80.0, "offered_per_s": 80.0},
            run | {"shedding": "count 8", "load": "2x", "rate": 200.0}
            | {"growth_mb": 1.0, "peak_growth_mb": 2.0},
            at_80 | {"shedding": "delay 5 ms, cap 64", "load": "80%", "rate": 80.0},
            run | {"shedding": "delay 5 ms, cap 64", "load": "2x", "rate": 200.0}
            | {"growth_mb": 1.0, "peak_growth_mb": 2.0},
        ],
    }  # fmt: skip
    assert goals(result, "delay 5 ms, cap 64") == [
        "- met: no 503 at 80% (0 of 80)",
        "- met: goodput at 2x >= 90% of capacity (95%)",
        "- met: accepted p99 at 2x <= 3x the p99 at 80% (2.0 vs 2.0 ms)",
        "- met: 503 p99 < 5 ms (1.0 ms)",
        "- met: api memory growth < 20 MB (1.0 MB)",
        "- met: only 200 and 503 (of the answers) (200, 503)",
    ]
    assert goals(result, "count 8")[0] == "- NOT met: no 503 at 80% (5 of 100)"
    report = markdown([result])
    assert (
        "## sync, hey, 256 connections, the stack pinned to CPU 1, hey to CPU 0, "
        "the api capped at 0.5 CPU (a quota per 10 ms)" in report
    )
    assert "load average 0.10 0.10 0.10 before, 1.00 0.50 0.20 after" in report
    assert (
        "| count 8 | 2x | 200 | 200 | 2.00x | 95 | 95% | 1.0 | 2.0 | 1.0 | 200: 95, 503: 5 "
        "| 1.0 (2.0) | - | - | 1.00 0.50 0.20 |" in report  # no CPU figures in this run
    )
    assert "Goals, count 8:" in report
    assert "Goals, delay 5 ms, cap 64:" in report
    assert "Goals, none" not in report


def _runs_sent(at_80: float, at_2x: float) -> dict[str, Any]:
    """A result of capacity 100 whose 80% and 2x loads sent ``at_80`` and ``at_2x`` req/s,
    every goal met by its figures."""
    run = {
        "goodput_per_s": 95.0, "accepted_p50_ms": 1.0, "accepted_p99_ms": 2.0,
        "shed_p99_ms": 1.0, "statuses": {"200": 95, "503": 5}, "growth_mb": 1.0,
    }  # fmt: skip
    return {
        "capacity": 100.0,
        "runs": [
            run | {"shedding": "count 8", "load": "80%", "rate": 80.0, "offered_per_s": at_80,
                   "statuses": {"200": 80}},
            run | {"shedding": "count 8", "load": "2x", "rate": 200.0, "offered_per_s": at_2x},
        ],
    }  # fmt: skip


def test_goals_at_2x_are_decided_only_when_1_9x_capacity_went_out() -> None:
    assert all(line.startswith("- met") for line in goals(_runs_sent(80, 190), "count 8"))
    short = goals(_runs_sent(80, 189), "count 8")
    assert short[0] == (
        "- not decided where a load was sent short: "
        "2x sent 1.89x capacity (189/s), under the 1.90x it needs"
    )
    assert short[1] == "- met: no 503 at 80% (0 of 80)"  # reads only the 80% load
    assert [line.split(":")[0] for line in short[2:]] == ["- not decided"] * 5
    assert "- not decided: goodput at 2x >= 90% of capacity (95%)" in short


def test_an_80_percent_load_sent_short_leaves_its_goals_undecided() -> None:
    lines = goals(_runs_sent(75, 200), "count 8")
    assert "80% sent 0.75x capacity (75/s), under the 0.76x it needs" in lines[0]
    verdicts = {line.split(": ")[1].split(" (")[0]: line.split(":")[0] for line in lines[1:]}
    assert verdicts["no 503 at 80%"] == "- not decided"
    assert verdicts["accepted p99 at 2x <= 3x the p99 at 80%"] == "- not decided"
    assert verdicts["goodput at 2x >= 90% of capacity"] == "- met"


def test_the_edge_s_cpu_per_refusal_is_what_its_cpu_at_2x_leaves_after_the_passed() -> None:
    """At 80%: 1000 passed, 0.05 s of the edge's CPU (50 µs each). At 2x: 1000 passed and
    3000 refused in 0.11 s, so 0.06 s for 3000 refusals (20 µs each); the api's 1000
    answers took 0.5 s (500 µs each)."""
    base = {"offered_per_s": 1.0, "goodput_per_s": 1.0, "accepted_p50_ms": 1.0,
            "accepted_p99_ms": 1.0, "shed_p99_ms": 1.0, "rate": 1.0}  # fmt: skip
    result = {
        "pattern": "web-single", "date": "2026-12-03 21:00 UTC", "capacity": 1.0,
        "capacity_how": "given", "settings": [{"name": "edge 4:4"}], "seconds": 1,
        "runs": [
            base | {"shedding": "edge 4:4", "load": "80%", "statuses": {"200": 1000},
                    "cpu_s": {"api": 0.5, "edge": 0.05}},
            base | {"shedding": "edge 4:4", "load": "2x",
                    "statuses": {"not sent": 7, "200": 1000, "503": 3000},
                    "cpu_s": {"api": 0.5, "edge": 0.11}},
        ],
    }  # fmt: skip
    assert cpu_per(result["runs"][1], "api", "200") == pytest.approx(500)
    assert cpu_per(result["runs"][1], "edge") == pytest.approx(27.5)
    assert edge_refusal_cost(result, "edge 4:4") == (
        "- edge CPU: 50 µs per request passed to the api (at 80%), 20 µs per refusal (at 2x, "
        "the rest over the 3000 refused); the api's answer 500 µs: a refusal costs 0.04 of an "
        "answer, a passed request adds 0.10"
    )
    assert edge_refusal_cost(result, "none") == ""
    assert "| 500 | 28 |" in markdown([result])
    result["runs"][1]["cpu_s"]["edge"] = 0.04  # less than the 1000 passed cost at 80%
    assert "a refusal's own cost is within this run's noise" in edge_refusal_cost(
        result, "edge 4:4"
    )


def test_a_goal_without_its_figure_is_not_met() -> None:
    run = {
        "offered_per_s": 200.0, "goodput_per_s": 0.0, "accepted_p50_ms": None,
        "accepted_p99_ms": None, "shed_p99_ms": None, "statuses": {"no answer": 100},
    }  # fmt: skip
    result = {
        "capacity": 100.0,
        "runs": [run | {"shedding": "count 8", "load": "80%", "rate": 80.0},
                 run | {"shedding": "count 8", "load": "2x", "rate": 200.0}],
    }  # fmt: skip
    found = goals(result, "count 8")
    assert [line.split(":")[0] for line in found] == ["- met"] + ["- NOT met"] * 5
    assert "- NOT met: 503 p99 < 5 ms (no 503: nothing refused)" in found


def test_the_settings_compared_in_the_order_asked() -> None:
    args = argparse.Namespace(
        shedding=["count", "delay", "none", "edge"],
        bound=64,
        delay_target=[5.0, 20.0],
        delay_cap=256,
        edge=[(16, 16), (64, 0)],
    )
    assert shedding_settings(args) == [
        {"name": "count 64", "MAX_REQUESTS_IN_FLIGHT": "64", "OVERLOAD_DELAY_TARGET_MS": "0"},
        {"name": "delay 5 ms, cap 256", "MAX_REQUESTS_IN_FLIGHT": "256",
         "OVERLOAD_DELAY_TARGET_MS": "5"},
        {"name": "delay 20 ms, cap 256", "MAX_REQUESTS_IN_FLIGHT": "256",
         "OVERLOAD_DELAY_TARGET_MS": "20"},
        {"name": "none", "MAX_REQUESTS_IN_FLIGHT": "0", "OVERLOAD_DELAY_TARGET_MS": "0"},
        {"name": "edge 16:16", "EDGE": "1", "EDGE_MAXCONN": "16", "EDGE_MAX_QUEUE": "16",
         "MAX_REQUESTS_IN_FLIGHT": "0", "OVERLOAD_DELAY_TARGET_MS": "0"},
        {"name": "edge 64:0", "EDGE": "1", "EDGE_MAXCONN": "64", "EDGE_MAX_QUEUE": "0",
         "MAX_REQUESTS_IN_FLIGHT": "0", "OVERLOAD_DELAY_TARGET_MS": "0"},
    ]  # fmt: skip


def test_an_edge_setting_lays_haproxy_over_the_stack_and_publishes_its_port() -> None:
    edge, bare = Stack("sync", 0, edge=True), Stack("sync", 0)
    assert edge.compose[-2:] == ["-f", "compose/edge.yaml"]
    assert (edge.public, bare.public) == ("edge", "api")
    assert "compose/edge.yaml" not in bare.compose


@pytest.mark.parametrize(
    "argv",
    [
        ["sync", "--delay-target", "0"],
        ["sync", "--shedding", "count,fifo"],
        ["sync", "--bound", "0"],
        ["sync", "--edge", "16"],
        ["sync", "--edge", "0:4"],
        ["sync", "--edge", "16:-1"],
        ["sync", "--cores", "1:1"],
        ["sync", "--cores", "1"],
        ["sync", "--cores", "1:99"],
        ["sync", "--cores", "a:b"],
    ],
)
def test_bad_settings_get_one_clear_error(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "--" in capsys.readouterr().err


def test_a_rebuilt_report_keeps_the_hand_written_reading() -> None:
    reading = f"{READING_MARKER}\n## Reading\nwhat the runs say\n"
    assert keep_reading("# tables\n", "# old tables\n\n" + reading) == f"# tables\n\n{reading}"
    assert keep_reading("# tables\n", "# old tables, no reading\n") == "# tables\n"
    assert keep_reading("# tables\n", "") == "# tables\n"


def test_cores_give_the_front_the_stack_s_cpu_unless_a_third_is_named() -> None:
    assert _cores("1:0") == (1, 0, 1)
    assert _cores("1:0:0") == (1, 0, 0)
    assert _cores("off") is None
    for bad in ("1:0:99", "1:0:x", "1:0:0:0"):
        with pytest.raises(argparse.ArgumentTypeError):
            _cores(bad)


def test_the_api_s_capacity_is_measured_once_and_each_edge_s_through_itself() -> None:
    """The settings the api serves alone share one closed loop on the reference (none)
    stack; an edge stack gets a closed loop of its own, through its URL."""
    compared = [{"name": "count 8"}, {"name": "none"}, {"name": "edge 4:4", "EDGE": "1"}]
    urls = [
        "http://127.0.0.1:1/predict",
        "http://127.0.0.1:2/predict",
        "http://127.0.0.1:3/predict",
    ]
    measured: list[tuple[str, int]] = []

    def load(url: str, seconds: float, connections: int = 0) -> Tally:
        measured.append((url, connections))
        tally = Tally()
        for _ in range(int(seconds) * (300 if url.endswith(":3/predict") else 200)):
            tally.add(0, 200, 0.001)
        return tally

    capacities = measure_capacities(compared, urls, load, connections=64)
    assert measured == [(urls[1], 64), (urls[2], 64)]
    assert capacities == {"count 8": 200.0, "none": 200.0, "edge 4:4": 300.0}


def test_a_setting_loaded_at_its_own_capacity_is_judged_by_it() -> None:
    """An edge whose own capacity is 50 answered 47/s at 2x: 94% of its capacity, met,
    though it is under half of the api's 100; the heading names both capacities."""
    result = _runs_sent(40, 95)
    for run, rate in zip(result["runs"], (40.0, 100.0), strict=True):
        run |= {"capacity": 50.0, "rate": rate, "goodput_per_s": 47.0}
    assert "- met: goodput at 2x >= 90% of capacity (94%)" in goals(result, "count 8")
    result["capacities"] = {"none": 100.0, "count 8": 50.0}
    assert _capacities(result) == "api 100 req/s; count 8 50 req/s"
    assert _capacities({"capacity": 100.0, "capacities": {"none": 100.0}}) == "100 req/s"


@pytest.mark.parametrize(("front", "edge_cpu"), [(None, "1"), (0, "0")])
def test_pinning_puts_the_edge_first_on_its_cpu(
    monkeypatch: pytest.MonkeyPatch, front: int | None, edge_cpu: str
) -> None:
    """Every container on the stack's CPU; the edge on the front's, weighted over the api."""
    stack = Stack("sync", 0, edge=True)
    containers = {"": "api-id predictor-id edge-id", "edge": "edge-id"}
    monkeypatch.setattr(
        stack, "run", lambda *args: containers[args[-1] if args[-1] == "edge" else ""]
    )
    monkeypatch.setattr(stack, "published_port", lambda: 1)
    updates: list[list[str]] = []
    monkeypatch.setattr(
        "loadtests.bench.overload.subprocess.run", lambda line, **_: updates.append(line)
    )
    stack.pin(1, front)
    by_container = {line[-1]: line[2:-1] for line in updates}
    assert by_container["api-id"] == by_container["predictor-id"] == ["--cpuset-cpus", "1"]
    assert by_container["edge-id"] == [
        "--cpuset-cpus", edge_cpu, "--cpu-shares", str(FRONT_CPU_SHARES),
    ]  # fmt: skip
    assert FRONT_CPU_SHARES > 1024  # docker's default weight, the api's
