"""``make overload``: a pattern past its capacity, under each way of shedding, side by side.

    python -m loadtests.bench.overload PATTERN [--capacity REQ_PER_S] [--bound 64]
        [--delay-target 5[,10..]] [--delay-cap N] [--edge 64:64[,16:16..]]
        [--shedding count,delay,none,edge] [--seconds 30]

Brings up one stack of the pattern per shedding setting (the first on ``--port``, the
others on free ports, all on 127.0.0.1), measures the capacity of the first with a closed
loop (or takes ``--capacity``), then for each shedding setting (``count``: only the
in-flight bound, ``MAX_REQUESTS_IN_FLIGHT=bound``, as before the delay rule; ``delay``: the
queueing-delay rule at each ``--delay-target`` with the count as a hard cap; ``none``: no
shedding; ``edge``: HAProxy in front of the api, compose/edge.yaml, at each ``--edge``
MAXCONN:QUEUE, the api's own bound off) runs an open-loop load (:mod:`loadtests.openloop`)
at 80% and at 2x that capacity, ``--seconds`` each in ``--rounds`` turns (A B C, A B C, ...:
on a shared machine the settings meet the same minutes), reading the api's memory from
``docker stats`` and the load average before and after. Writes
``loadtests/results/overload/<pattern>[-api<cpus>].json`` and rebuilds the report
``loadtests/reports/overload.md`` from every result there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests.measured import load_average
from loadtests.openloop import LoadError, Tally, closed_loop, open_loop
from shared.kit.settings import MAX_REQUESTS_IN_FLIGHT_DEFAULT, OVERLOAD_DELAY_TARGET_MS_RECOMMENDED

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "loadtests" / "results" / "overload"
REPORT = ROOT / "loadtests" / "reports" / "overload.md"
BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
LOADS = (("80%", 0.8), ("2x", 2.0))
SHEDDING_KINDS = ("count", "delay", "none", "edge")
#: The edge's settings compared by default, MAXCONN:QUEUE (compose/edge.yaml's defaults first).
EDGE_DEFAULTS = "64:64,16:16"
CAPACITY_USERS = 32
CONNECTIONS = 256  # of the open loop, over all its processes: more than the bound
CAPACITY_SECONDS = 10.0
WARMUP_SECONDS = 3.0
CPU_PERIOD_US = 10_000  # of the api's CPU cap (--api-cpus)
CGROUP = Path("/sys/fs/cgroup")
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def _in_process(url: str, rate: float, seconds: float, start: float, connections: int) -> Tally:
    return asyncio.run(open_loop(url, BODY, rate, seconds, start=start, connections=connections))


def _closed_in_process(url: str, users: int, seconds: float) -> Tally:
    return asyncio.run(closed_loop(url, BODY, users, seconds))


def spread(
    pool: ProcessPoolExecutor, processes: int, url: str, rate: float, seconds: float
) -> Tally:
    """The open loop at ``rate`` shared by ``processes`` processes, their tallies merged."""
    start = time.monotonic() + 0.5  # all processes start their clocks at the same moment
    connections = max(CONNECTIONS // processes, 1)
    shares = [
        pool.submit(_in_process, url, rate / processes, seconds, start, connections)
        for _ in range(processes)
    ]
    tally = Tally()
    for share in shares:
        tally.merge(share.result())
    return tally


def capacity(pool: ProcessPoolExecutor, processes: int, url: str) -> float:
    """Requests/s answered 2xx by ``CAPACITY_USERS`` clients sending back to back."""
    users = max(CAPACITY_USERS // processes, 1)
    shares = [
        pool.submit(_closed_in_process, url, users, CAPACITY_SECONDS) for _ in range(processes)
    ]
    tally = Tally()
    for share in shares:
        tally.merge(share.result())
    return float(tally.summary(CAPACITY_SECONDS)["goodput_per_s"])


class Stack:
    """The pattern's compose stack, brought up with the given in-flight bound (and settings)."""

    def __init__(
        self,
        pattern: str,
        port: int,
        api_cpus: float = 0.0,
        purpose: str = "overload",
        cpu_period_us: int = CPU_PERIOD_US,
        *,
        edge: bool = False,
    ) -> None:
        self.pattern = pattern
        self.port = port  # 0: any free port, read once up (published_port)
        self.api_cpus = api_cpus  # 0: the compose file's limit
        self.cpu_period_us = cpu_period_us  # of the cap; 0: docker's 100 ms
        self.compose = ["./compose/compose.sh", "-f", f"patterns/{pattern}/compose.yaml"]
        if edge:  # HAProxy in front: it publishes the port, the api is reached through it
            self.compose += ["-f", "compose/edge.yaml"]
        self.public = "edge" if edge else "api"
        self._containers: dict[str, list[str]] = {}  # service -> container ids, once up
        # A project of its own: a stack left up by `make up` is neither reused nor taken down.
        tag = os.environ.get("MLSP_TAG", "dev")
        self.project = f"mlsp-{purpose}-{pattern}" + ("" if tag == "dev" else f"-{tag}")

    def run(self, *args: str, **settings: str) -> str:
        """``docker compose ARGS`` on the stack, with ``settings`` added to its environment."""
        env = os.environ | settings
        env |= {"API_PORT": str(self.port), "COMPOSE_PROJECT_NAME": self.project}
        done = subprocess.run(
            [*self.compose, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise LoadError(f"compose {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def up(self, settings: dict[str, str]) -> None:
        """Start (or recreate) the stack with ``settings``; once more if a service was
        unhealthy (a healthcheck may time out on a machine still busy with the last load)."""
        self._containers = {}
        try:
            self.run("up", "--build", "--wait", "--remove-orphans", **settings)
        except LoadError:
            time.sleep(10)
            self.run("up", "--build", "--wait", "--remove-orphans", **settings)
        if self.api_cpus:
            self.limit_api_cpus()

    def published_port(self) -> int:
        """The host port the api (or the edge in front of it) is published on (127.0.0.1)."""
        return int(self.run("port", self.public, "8080").strip().rsplit(":", 1)[1])

    def limit_api_cpus(self) -> None:
        """Cap the api container's CPU (``docker update --cpus``): on a machine shared with
        the generator, a capped api leaves the generator room to send twice its capacity.

        ``--cpus`` gives the quota per 100 ms: at 0.5 CPU an api that spent it stalls for up
        to 50 ms, a queueing delay of the cap's own making. So the period is then shortened
        to ``cpu_period_us`` in the container's cgroup (v1 or v2), when the host shows it.
        """
        for container in self.run("ps", "-q", "--no-trunc", "api").split():
            subprocess.run(
                ["docker", "update", "--cpus", str(self.api_cpus), container],
                capture_output=True,
                check=True,
            )
            if self.cpu_period_us:
                set_cpu_period(container, self.api_cpus, self.cpu_period_us)

    def down(self) -> None:
        self.run("down", "--volumes", "--remove-orphans")

    def cpu_seconds(self, service: str) -> float | None:
        """CPU time ``service``'s containers have used so far (their cgroups); None when
        the host shows no cgroup CPU account for them."""
        if service not in self._containers:  # read once: a load must not wait on compose
            self._containers[service] = self.run("ps", "-q", "--no-trunc", service).split()
        used = [container_cpu_seconds(c) for c in self._containers[service]]
        return None if not used or None in used else sum(u for u in used if u is not None)

    def api_memory_bytes(self) -> float:
        """The api container's memory use now (``docker stats``)."""
        container = self.run("ps", "-q", "api").split()[0]
        shown = subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return memory_bytes(shown.split("/")[0])


def cgroup_v2_folders(container: str) -> tuple[Path, ...]:
    """Where a container's cgroup v2 folder may be: under systemd's slice, or docker's own."""
    return CGROUP / "system.slice" / f"docker-{container}.scope", CGROUP / "docker" / container


def set_cpu_period(container: str, cpus: float, period_us: int) -> None:
    """The CPU quota of ``container`` given per ``period_us`` (cgroup v1 or v2 files);
    :class:`LoadError` when the host shows neither."""
    quota = int(cpus * period_us)
    v1 = CGROUP / "cpu" / "docker" / container
    if (v1 / "cpu.cfs_period_us").exists():
        (v1 / "cpu.cfs_period_us").write_text(str(period_us))
        (v1 / "cpu.cfs_quota_us").write_text(str(quota))
        return
    for folder in cgroup_v2_folders(container):
        if (folder / "cpu.max").exists():
            (folder / "cpu.max").write_text(f"{quota} {period_us}")
            return
    raise LoadError(f"no cgroup CPU files for {container}: give --cpu-period-us 0")


def container_cpu_seconds(container: str) -> float | None:
    """CPU seconds ``container`` has used (cgroup v1's cpuacct or v2's cpu.stat); None
    when the host shows neither."""
    v1 = CGROUP / "cpuacct" / "docker" / container / "cpuacct.usage"
    if v1.exists():
        return int(v1.read_text()) / 1e9
    for folder in cgroup_v2_folders(container):
        if (folder / "cpu.stat").exists():
            stat = dict(line.split() for line in (folder / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
    return None


class CpuMeter:
    """CPU seconds each of a stack's services used during the loads given to it."""

    def __init__(self, stack: Stack, services: tuple[str, ...]) -> None:
        self.stack = stack
        self.services = tuple(dict.fromkeys(services))  # the api once, when it is public
        self.used: dict[str, float | None] = dict.fromkeys(services, 0.0)

    def __enter__(self) -> CpuMeter:
        self._before = {s: self.stack.cpu_seconds(s) for s in self.services}
        return self

    def __exit__(self, *exc: object) -> None:
        for service in self.services:
            after, before, used = (
                self.stack.cpu_seconds(service),
                self._before[service],
                self.used[service],
            )
            known = after is not None and before is not None and used is not None
            self.used[service] = used + after - before if known else None  # type: ignore[operator]


def memory_bytes(text: str) -> float:
    """``"45.3MiB"`` -> bytes."""
    found = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]+)\s*", text)
    if not found or found[2] not in _UNITS:
        raise ValueError(f"not a docker stats memory figure: {text!r}")
    return float(found[1]) * _UNITS[found[2]]


class MemoryWatch:
    """The api's memory sampled in a thread while a load runs: first and peak."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.first = stack.api_memory_bytes()
        self.peak = self.first
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stopped.wait(5.0):  # docker stats itself costs CPU
            self.peak = max(self.peak, self.stack.api_memory_bytes())

    def stop(self) -> dict[str, float]:
        self.stopped.set()
        self.thread.join()
        last = self.stack.api_memory_bytes()
        return {
            "growth_mb": (last - self.first) / 1e6,
            "peak_growth_mb": (self.peak - self.first) / 1e6,
        }


def shedding_settings(args: argparse.Namespace) -> list[dict[str, str]]:
    """The settings compared, in order, each with its ``name`` in the report."""
    compared: list[dict[str, str]] = []
    for kind in args.shedding:
        if kind == "count":
            compared.append(
                {
                    "name": f"count {args.bound}",
                    "MAX_REQUESTS_IN_FLIGHT": str(args.bound),
                    "OVERLOAD_DELAY_TARGET_MS": "0",
                }
            )
        elif kind == "delay":
            compared += [
                {
                    "name": f"delay {target:g} ms, cap {args.delay_cap}",
                    "MAX_REQUESTS_IN_FLIGHT": str(args.delay_cap),
                    "OVERLOAD_DELAY_TARGET_MS": f"{target:g}",
                }
                for target in args.delay_target
            ]
        elif kind == "edge":
            compared += [
                {
                    "name": f"edge {maxconn}:{queue}",
                    "EDGE": "1",
                    "EDGE_MAXCONN": str(maxconn),
                    "EDGE_MAX_QUEUE": str(queue),
                    "MAX_REQUESTS_IN_FLIGHT": "0",
                    "OVERLOAD_DELAY_TARGET_MS": "0",
                }
                for maxconn, queue in args.edge
            ]
        else:
            compared.append(
                {"name": "none", "MAX_REQUESTS_IN_FLIGHT": "0", "OVERLOAD_DELAY_TARGET_MS": "0"}
            )
    return compared


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Capacity, then each shedding setting at each load; the figures as one JSON document.

    Each setting has a stack of its own, all up at once (the first on ``--port``, the
    others on free ports), and the loads go to them in turns, ``--rounds`` slices of
    ``--seconds`` shared out: on a machine whose load moves from one minute to the next,
    the settings then meet the same minutes, and their figures can be compared.
    """
    compared = shedding_settings(args)
    stacks = [
        Stack(
            args.pattern,
            args.port if i == 0 else 0,
            args.api_cpus,
            purpose=f"overload{i}",
            cpu_period_us=args.cpu_period_us,
            edge=setting.get("EDGE") == "1",
        )
        for i, setting in enumerate(compared)
    ]
    result: dict[str, Any] = {
        "pattern": args.pattern,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": compared,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "processes": args.processes,
        "api_cpus": args.api_cpus,
        "cpu_period_us": args.cpu_period_us,
        "load_average_before": load_average(),
        "runs": [],
    }
    slice_s = args.seconds / args.rounds
    with ProcessPoolExecutor(args.processes) as pool:
        try:
            urls = []
            for stack, setting in zip(stacks, compared, strict=True):
                stack.up(_environment(setting))
                urls.append(f"http://127.0.0.1:{stack.published_port()}/predict")
            if args.capacity:
                result["capacity"], result["capacity_how"] = args.capacity, "given"
            else:
                result["capacity"] = capacity(pool, args.processes, urls[0])
                result["capacity_how"] = (
                    f"closed loop, {CAPACITY_USERS} clients, {CAPACITY_SECONDS:.0f} s, "
                    f"with {compared[0]['name']}"
                )
            print(f"{args.pattern}: capacity {result['capacity']:.0f} req/s", file=sys.stderr)
            for url in urls:
                spread(pool, args.processes, url, result["capacity"] * 0.5, WARMUP_SECONDS)
            memory = [MemoryWatch(stack) for stack in stacks]
            for load, factor in LOADS:
                rate = result["capacity"] * factor
                tallies = [Tally() for _ in compared]
                meters = [CpuMeter(stack, ("api", stack.public)) for stack in stacks]
                for _ in range(args.rounds):
                    for tally, url, meter in zip(tallies, urls, meters, strict=True):
                        with meter:
                            tally.merge(spread(pool, args.processes, url, rate, slice_s))
                for setting, tally, meter in zip(compared, tallies, meters, strict=True):
                    run = {"shedding": setting["name"], "load": load, "rate": rate}
                    run |= tally.summary(args.seconds) | {"load_average": load_average()}
                    run |= {"cpu_s": meter.used}
                    result["runs"].append(run)
                    print(json.dumps(run), file=sys.stderr)
            for setting, watch in zip(compared, memory, strict=True):
                last = next(r for r in result["runs"][::-1] if r["shedding"] == setting["name"])
                last |= watch.stop()
        finally:
            for stack in stacks:
                stack.down()
    result["load_average_after"] = load_average()
    return result


def _environment(setting: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in setting.items() if name not in ("name", "EDGE")}


def cpu_per(run: dict[str, Any], service: str, status: str | None = None) -> float | None:
    """CPU µs ``service`` used per request of ``run`` answered ``status`` (None: per
    request sent); None when not measured."""
    used = (run.get("cpu_s") or {}).get(service)
    statuses = run["statuses"]
    count = (
        statuses.get(status, 0) if status else sum(statuses.values()) - statuses.get("not sent", 0)
    )
    return None if used is None or not count else used / count * 1e6


def edge_refusal_cost(result: dict[str, Any], shedding: str) -> str:
    """What one refusal by the edge costs in CPU, against one answer of the api's.

    At 80% the edge refuses (almost) nothing: its CPU per request there is a passed
    request's. At 2x the rest of its CPU, over the requests it refused, is a refusal's.
    """
    runs = {(r["shedding"], r["load"]): r for r in result["runs"]}
    at_80, at_2x = runs.get((shedding, "80%")), runs.get((shedding, "2x"))
    if not (at_80 and at_2x) or (at_2x.get("cpu_s") or {}).get("edge") is None:
        return ""
    passed_us = cpu_per(at_80, "edge")
    refused = at_2x["statuses"].get("503", 0)
    answer_us = cpu_per(at_2x, "api", "200")
    if passed_us is None or not refused or not answer_us:
        return ""
    passed = sum(at_2x["statuses"].values()) - at_2x["statuses"].get("not sent", 0) - refused
    refusal_us = (at_2x["cpu_s"]["edge"] * 1e6 - passed_us * passed) / refused
    if refusal_us <= 0:  # the edge spent less per passed request at 2x than at 80%
        return (
            f"- edge CPU: {passed_us:.0f} µs per request passed to the api (at 80%), "
            f"{cpu_per(at_2x, 'edge'):.0f} µs per request at 2x, refusals included: a "
            f"refusal's own cost is within this run's noise; the api's answer {answer_us:.0f} µs"
        )
    return (
        f"- edge CPU: {passed_us:.0f} µs per request passed to the api (at 80%), "
        f"{refusal_us:.0f} µs per refusal (at 2x, the rest over the {refused} refused); "
        f"the api's answer {answer_us:.0f} µs: a refusal costs {refusal_us / answer_us:.2f} "
        f"of an answer, a passed request adds {passed_us / answer_us:.2f}"
    )


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _cpus(api_cpus: float | None, period_us: int | None = None) -> str:
    if not api_cpus:
        return "the api's CPU as its compose file sets it"
    period = f"{period_us / 1000:g} ms" if period_us else "100 ms"
    return f"the api capped at {api_cpus:g} CPU (a quota per {period}), the rest left to the load"


def _both(a: float | None, b: float | None, check: Callable[[float, float], bool]) -> bool:
    """``check(a, b)``; False when either figure is missing (no such answers were seen)."""
    return a is not None and b is not None and check(a, b)


def goals(result: dict[str, Any], shedding: str) -> list[str]:
    """The goals of docs/reliability.md, met or not, for the runs with ``shedding``."""
    runs = {(r["shedding"], r["load"]): r for r in result["runs"]}
    at_80, at_2x = runs.get((shedding, "80%")), runs.get((shedding, "2x"))
    if not (at_80 and at_2x):
        return []
    capacity = result["capacity"]
    answered = (set(at_80["statuses"]) | set(at_2x["statuses"])) - {"not sent"}
    checks = [
        (
            "no 503 at 80%",
            not at_80["statuses"].get("503"),
            f"{at_80['statuses'].get('503', 0)} of {sum(at_80['statuses'].values())}",
        ),
        (
            "goodput at 2x >= 90% of capacity",
            at_2x["goodput_per_s"] >= 0.9 * capacity,
            f"{at_2x['goodput_per_s'] / capacity:.0%}",
        ),
        (
            "accepted p99 at 2x <= 3x the p99 at 80%",
            _both(at_2x["accepted_p99_ms"], at_80["accepted_p99_ms"], lambda a, b: a <= 3 * b),
            f"{_ms(at_2x['accepted_p99_ms'])} vs {_ms(at_80['accepted_p99_ms'])} ms",
        ),
        (
            "503 p99 < 5 ms",
            _both(at_2x["shed_p99_ms"], 5.0, lambda a, b: a < b),
            f"{_ms(at_2x['shed_p99_ms'])} ms",
        ),
        (
            "api memory growth < 20 MB",
            _both(at_2x.get("growth_mb"), 20.0, lambda a, b: a < b),
            f"{at_2x.get('growth_mb', 0):.1f} MB",
        ),
        (
            "only 200 and 503 (of the requests sent)",
            answered <= {"200", "503"},
            ", ".join(sorted(answered)),
        ),
    ]
    return [f"- {'met' if ok else 'NOT met'}: {name} ({shown})" for name, ok, shown in checks]


def markdown(results: list[dict[str, Any]]) -> str:
    """The report: per pattern, its settings, one row per shedding and load, the goals."""
    lines = [
        "# Overload: open-loop load at 80% and 2x capacity, by way of shedding",
        "",
        "Generated by `make overload PATTERN=..` (loadtests/bench/overload.py); do not edit.",
        "Open loop (loadtests/openloop.py): requests sent at a fixed rate from the host to the",
        "api's published port on 127.0.0.1, answered or not; latencies from each request's send.",
        "Shedding: `count N` is the in-flight bound alone (MAX_REQUESTS_IN_FLIGHT=N, the delay",
        "rule off, as before it existed); `delay T ms, cap N` is the queueing-delay rule",
        "(OVERLOAD_DELAY_TARGET_MS=T) with the count as a hard cap; `none` sheds nothing;",
        "`edge M:Q` is HAProxy in front of the api (compose/edge.yaml, `make up EDGE=1`): M",
        "requests at once to the api, Q more waiting in HAProxy, the rest refused 503 in C (the",
        "api's own bound off). The generator shares the 2 cores with the stack (and the edge).",
        "`late` is the share of requests the generator sent over 5 ms after their due time (it",
        "shares the 2 cores with the stack: a high share means the load, not the api, lagged);",
        "Requests share 256 keep-alive connections, more than the bound, as many clients would",
        "(a server cannot shed what a client's pool holds back; waiting for a connection counts in",
        "the latency); `not sent`: due while 1000 requests were already waiting (the client's",
        "bound), so never sent; `no answer`: timed out (5 s, the wait for a connection included),",
        "refused or reset. `load avg`: the machine's 1, 5, 15 min load average after the row.",
    ]
    for result in results:
        lines += [
            "",
            f"## {result['pattern']}, {_cpus(result.get('api_cpus'), result.get('cpu_period_us'))}",
            "",
            f"{result['date']}; capacity {result['capacity']:.0f} req/s ({result['capacity_how']});"
            f" {result['seconds']} s per setting and load, in {result.get('rounds', 1)} turns"
            f" (the settings' stacks all up, loaded one at a time, turn after turn);"
            f" {result['processes']} generator processes; one"
            f" iris row per request; load average {result.get('load_average_before', '?')} before,"
            f" {result.get('load_average_after', '?')} after.",
            "",
            "| shedding | load | offered/s | goodput/s | of capacity | accepted p50 ms "
            "| accepted p99 ms | 503 p99 ms | late | statuses | api memory growth (peak) MB "
            "| api CPU µs per 200 | edge CPU µs per request | load avg |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
        ]
        for run in result["runs"]:
            memory = (
                f"{run['growth_mb']:.1f} ({run['peak_growth_mb']:.1f})"
                if "growth_mb" in run
                else ""
            )
            statuses = ", ".join(f"{s}: {n}" for s, n in run["statuses"].items())
            lines.append(
                f"| {run['shedding']} | {run['load']} | {run['offered_per_s']:.0f} "
                f"| {run['goodput_per_s']:.0f} | {run['goodput_per_s'] / result['capacity']:.0%} "
                f"| {_ms(run['accepted_p50_ms'])} | {_ms(run['accepted_p99_ms'])} "
                f"| {_ms(run['shed_p99_ms'])} | {run['late_share']:.0%} | {statuses} | {memory} "
                f"| {_us(cpu_per(run, 'api', '200'))} | {_us(cpu_per(run, 'edge'))} "
                f"| {run.get('load_average', '')} |"
            )
        for setting in result["settings"]:
            found = goals(result, setting["name"]) if setting["name"] != "none" else []
            if found:
                lines += ["", f"Goals, {setting['name']}:", *found]
            cost = edge_refusal_cost(result, setting["name"])
            if cost:
                lines.append(cost)
    return "\n".join(lines) + "\n"


def _targets(text: str) -> list[float]:
    targets = [float(t) for t in text.split(",") if t.strip()]
    if not targets or min(targets) <= 0:
        raise argparse.ArgumentTypeError(f"give targets above 0 ms, comma-separated, not {text!r}")
    return targets


def _edge_settings(text: str) -> list[tuple[int, int]]:
    """``"16:16,64:64"`` -> ``[(16, 16), (64, 64)]``: the edge's MAXCONN:QUEUE pairs."""
    pairs = []
    for item in (i.strip() for i in text.split(",")):
        maxconn, sep, queue = item.partition(":")
        if not (sep and maxconn.isdigit() and queue.isdigit() and int(maxconn) > 0):
            raise argparse.ArgumentTypeError(
                f"give MAXCONN:QUEUE pairs (MAXCONN 1 or more, QUEUE 0 or more), not {text!r}"
            )
        pairs.append((int(maxconn), int(queue)))
    return pairs


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = set(kinds) - set(SHEDDING_KINDS)
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"give some of {','.join(SHEDDING_KINDS)}, not {text!r}")
    return kinds


def main(argv: list[str] | None = None) -> int:
    """Measure one pattern, keep its JSON, rebuild the report from every pattern's."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pattern")
    parser.add_argument("--capacity", type=float, default=0.0, help="req/s; 0: measure it")
    parser.add_argument(
        "--bound", type=int, default=64, help="MAX_REQUESTS_IN_FLIGHT of the count-only setting"
    )
    parser.add_argument(
        "--delay-target",
        type=_targets,
        default=[OVERLOAD_DELAY_TARGET_MS_RECOMMENDED],
        help="ms, comma-separated: OVERLOAD_DELAY_TARGET_MS of each delay setting",
    )
    parser.add_argument(
        "--delay-cap",
        type=int,
        default=MAX_REQUESTS_IN_FLIGHT_DEFAULT,
        help="MAX_REQUESTS_IN_FLIGHT beside the delay rule (0: none)",
    )
    parser.add_argument(
        "--edge",
        type=_edge_settings,
        default=_edge_settings(EDGE_DEFAULTS),
        help="MAXCONN:QUEUE, comma-separated: EDGE_MAXCONN and EDGE_MAX_QUEUE of each edge setting",
    )
    parser.add_argument(
        "--shedding",
        type=_kinds,
        default=list(SHEDDING_KINDS),
        help="comma-separated, in order: " + ",".join(SHEDDING_KINDS),
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="per setting and load")
    parser.add_argument(
        "--rounds", type=int, default=3, help="the settings take turns in this many slices"
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--api-cpus", type=float, default=0.0, help="cap the api container's CPU; 0: no cap"
    )
    parser.add_argument(
        "--cpu-period-us",
        type=int,
        default=CPU_PERIOD_US,
        help="the period of the api's CPU quota with --api-cpus; 0: docker's (100 ms)",
    )
    args = parser.parse_args(argv)
    if args.api_cpus < 0:
        parser.error("--api-cpus: give 0 (no cap) or a positive number of CPUs")
    if args.rounds < 1:
        parser.error("--rounds: 1 or more")
    if args.bound < 1 or args.delay_cap < 0:
        parser.error("--bound: 1 or more; --delay-cap: 0 (none) or more")
    try:
        result = measure(args)
    except LoadError as exc:
        print(f"overload: {exc}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.pattern + (f"-api{args.api_cpus:g}" if args.api_cpus else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    REPORT.write_text(markdown(results))
    print(markdown([result]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
