"""``make overload``: a pattern past its capacity, under each way of shedding, side by side.

    python -m loadtests.bench.overload PATTERN [--capacity REQ_PER_S] [--bound 64]
        [--delay-target 5[,10..]] [--delay-cap N] [--edge 64:16[,64:64..]]
        [--shedding count,delay,none,edge] [--seconds 30] [--cores 1:0[:0]|off]
        [--connections 1024] [--capacity-connections 64] [--api-cpus 0.3]

Brings up one stack of the pattern per shedding setting (the first on ``--port``, the
others on free ports, all on 127.0.0.1) and pins each (every container, and the
docker-proxy of its port if the engine runs one) to one CPU, the load generator to the
other (``--cores``; a third CPU there takes the edge and the docker-proxy). The api is
capped at ``--api-cpus`` of its CPU, so that hey, on one CPU, can send twice its capacity;
the edge has the rest, weighted to run first (:data:`FRONT_CPU_SHARES`). Measures the
capacity with ``--capacity-connections`` back to back (the api's on the ``none`` stack,
each edge's through it; or takes ``--capacity``), then for each shedding setting
(``count``: only the in-flight bound, ``MAX_REQUESTS_IN_FLIGHT=bound``; ``delay``: the
queueing-delay rule at each ``--delay-target`` with the count as a hard cap; ``none``: no
shedding; ``edge``: HAProxy in front of the api, compose/edge.yaml, at each ``--edge``
MAXCONN:QUEUE, the api's own bound off) sends a fixed-rate load with hey
(:mod:`loadtests.hey`, ``--connections``) at 80% and at 2x its own capacity, ``--seconds``
each in ``--rounds`` turns (A B C, A B C, ...: on a shared machine the settings meet the
same minutes), reading the api's memory from ``docker stats`` and the load average before
and after. Writes ``loadtests/results/overload/<pattern>[-api<cpus>].json`` and rebuilds
the report ``loadtests/reports/overload.md`` from every result there
(:mod:`loadtests.bench.overload_report`: a goal is decided only where its load was sent).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests import hey
from loadtests.bench.overload_report import keep_reading, markdown
from loadtests.measured import load_average
from loadtests.openloop import LoadError, Tally
from shared.kit.settings import MAX_REQUESTS_IN_FLIGHT_DEFAULT, OVERLOAD_DELAY_TARGET_MS_RECOMMENDED

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "loadtests" / "results" / "overload"
REPORT = ROOT / "loadtests" / "reports" / "overload.md"
BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
LOADS = (("80%", 0.8), ("2x", 2.0))
SHEDDING_KINDS = ("count", "delay", "none", "edge")
#: The edge's settings compared by default, MAXCONN:QUEUE (compose/edge.yaml's defaults first).
EDGE_DEFAULTS = "64:16,64:64"
CONNECTIONS = 1024  # hey's workers, each its own connection: more than the bound
CAPACITY_SECONDS = 10.0
CAPACITY_CONNECTIONS = 64
WARMUP_SECONDS = 3.0
WARMUP_RATE = 1000.0  # req/s: enough to warm every path, far below any capacity here
#: CPU of the stack (every container of it, and the docker-proxy of its published port)
#: and CPU of the generator (hey, and this process), by default.
CORES_DEFAULT = "1:0"
CPU_PERIOD_US = 10_000  # of the api's CPU cap (--api-cpus)
#: The edge's CPU weight beside the api's 1024 on their shared CPU: a load balancer that
#: answers first, as one with cores of its own would. Beside the default weight, 503 p99 at
#: 2x went from 12.7 to 7.8 ms (web-single, edge 64:16, 2026-12-04).
FRONT_CPU_SHARES = 16384
#: The api's share of its CPU by default (``--api-cpus``): low enough that hey, on the other
#: CPU, can send twice the api's capacity (it sends about 9k req/s there), and the edge keeps
#: the rest of the api's CPU, as a load balancer has cores of its own.
API_CPUS_DEFAULT = 0.3
CGROUP = Path("/sys/fs/cgroup")
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def proxy_pids(port: int, proc: Path = Path("/proc")) -> list[int]:
    """The docker-proxy processes that forward host ``port`` to a container: with Docker's
    userland proxy, every request to 127.0.0.1 goes through one (a process of the host,
    outside the container's cgroup)."""
    pids = []
    for cmdline in proc.glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if (
            args
            and args[0].endswith(b"docker-proxy")
            and _flag(args, b"-host-port") == str(port).encode()
        ):
            pids.append(int(cmdline.parent.name))
    return sorted(pids)


def _flag(args: list[bytes], name: bytes) -> bytes | None:
    """The value after ``name`` in ``args``, or None."""
    return args[args.index(name) + 1] if name in args[:-1] else None


def pin_process(pid: int, core: int) -> None:
    """Every thread of process ``pid`` on CPU ``core`` (threads it starts later inherit)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {core})


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

    def pin(self, core: int, front: int | None = None) -> None:
        """Every container of the stack (the api, the predictor, the edge) on CPU ``core``
        (``docker update --cpuset-cpus``), and the docker-proxy of its published port; the
        front (that docker-proxy, and the edge when there is one) on CPU ``front`` if given."""
        front = core if front is None else front
        fronts = (
            set(self.run("ps", "-q", "--no-trunc", "edge").split())
            if self.public == "edge"
            else set()
        )
        for container in self.run("ps", "-q", "--no-trunc").split():
            subprocess.run(
                [
                    "docker",
                    "update",
                    "--cpuset-cpus",
                    str(front if container in fronts else core),
                    *(["--cpu-shares", str(FRONT_CPU_SHARES)] if container in fronts else []),
                    container,
                ],
                capture_output=True,
                check=True,
            )
        for pid in proxy_pids(self.published_port()):
            pin_process(pid, front)

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
    others on free ports), each pinned to the stack's core, hey to the other; the loads go
    to the stacks in turns, ``--rounds`` slices of ``--seconds`` shared out: on a machine
    whose load moves from one minute to the next, the settings then meet the same minutes,
    and their figures can be compared. The capacity is what hey's ``--connections``
    connections get back to back (a closed loop) from the ``none`` stack (else the first),
    on the same cores.
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
    stack_core, load_core, front_core = args.cores or (None, None, None)
    result: dict[str, Any] = {
        "pattern": args.pattern,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": compared,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "generator": f"hey, {args.connections} connections",
        "cores": {"stack": stack_core, "load": load_core, "front": front_core},
        "api_cpus": args.api_cpus,
        "cpu_period_us": args.cpu_period_us,
        "load_average_before": load_average(),
        "runs": [],
    }

    def load(url: str, seconds: float, rate: float = 0.0, connections: int = 0) -> Tally:
        return hey.run(
            url,
            BODY,
            connections=connections or args.connections,
            seconds=seconds,
            rate=rate,
            core=load_core,
            processes=min(hey.PROCESSES, connections or args.connections),
        )

    slice_s = args.seconds / args.rounds
    try:
        urls = [
            start(stack, setting, stack_core, front_core)
            for stack, setting in zip(stacks, compared, strict=True)
        ]
        result["docker_proxy"] = any(proxy_pids(stack.published_port()) for stack in stacks)
        if load_core is not None:
            os.sched_setaffinity(0, {load_core})  # this process (its threads, docker CLIs)
        for url in urls:
            load(url, WARMUP_SECONDS, WARMUP_RATE)
        names = [setting["name"] for setting in compared]
        if args.capacity:
            capacities = dict.fromkeys(names, args.capacity)
            result["capacity_how"] = "given"
        else:
            capacities = measure_capacities(compared, urls, load, args.capacity_connections)
            result["capacity_how"] = (
                f"closed loop, hey, {args.capacity_connections} connections back to back,"
                f" {CAPACITY_SECONDS:.0f} s: the api's with none, each edge's through it"
            )
        result["capacity"] = capacities[names[reference_index(names)]]
        result["capacities"] = capacities
        print(f"{args.pattern}: capacities {capacities} req/s", file=sys.stderr)
        memory = [MemoryWatch(stack) for stack in stacks]
        for load_name, factor in LOADS:
            tallies = [Tally() for _ in compared]
            meters = [CpuMeter(stack, ("api", stack.public)) for stack in stacks]
            for _ in range(args.rounds):
                for tally, url, meter, name in zip(tallies, urls, meters, names, strict=True):
                    with meter:
                        tally.merge(load(url, slice_s, capacities[name] * factor))
            for setting, tally, meter in zip(compared, tallies, meters, strict=True):
                capacity = capacities[setting["name"]]
                run = {"shedding": setting["name"], "load": load_name, "rate": capacity * factor}
                run |= {"capacity": capacity}
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


def reference_index(names: list[str]) -> int:
    """The setting whose stack gives the api's capacity: ``none``, else the first."""
    return names.index("none") if "none" in names else 0


def measure_capacities(
    compared: list[dict[str, str]], urls: list[str], load: Any, connections: int
) -> dict[str, float]:
    """Each setting's capacity, req/s: what ``connections`` back to back get. The api's is
    measured once, on the reference stack, and stands for every setting the api itself
    serves; a stack behind the edge is measured through its edge, whose hop is part of it."""
    names = [setting["name"] for setting in compared]
    reference = reference_index(names)

    def closed_loop(i: int) -> float:
        found = load(urls[i], CAPACITY_SECONDS, connections=connections)
        return float(found.summary(CAPACITY_SECONDS)["goodput_per_s"])

    api = closed_loop(reference)
    return {
        name: closed_loop(i) if setting.get("EDGE") == "1" and i != reference else api
        for i, (name, setting) in enumerate(zip(names, compared, strict=True))
    }


def start(stack: Stack, setting: dict[str, str], core: int | None, front: int | None) -> str:
    """Bring ``stack`` up with ``setting``, pinned to CPU ``core`` (its front to ``front``)
    when given; its URL."""
    stack.up(_environment(setting))
    if core is not None:
        stack.pin(core, front)
    return f"http://127.0.0.1:{stack.published_port()}/predict"


def _environment(setting: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in setting.items() if name not in ("name", "EDGE")}


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


def _cores(text: str) -> tuple[int, int, int] | None:
    """``"1:0"`` -> ``(1, 0, 1)``: the stack's CPU and the generator's, two different ones
    of this machine, and the front's (docker-proxy and the edge: the stack's unless a third
    is given, ``"1:0:0"``); ``"off"`` -> None (not pinned)."""
    if text == "off":
        return None
    parts = text.split(":")
    if not (len(parts) in (2, 3) and all(p.isdigit() for p in parts) and parts[0] != parts[1]):
        raise argparse.ArgumentTypeError(
            f"give STACK:LOAD[:FRONT], the first two CPUs apart, or off; not {text!r}"
        )
    stack, load, front = (int(p) for p in (parts if len(parts) == 3 else [*parts, parts[0]]))
    cpus = os.sched_getaffinity(0)
    if not {stack, load, front} <= cpus:
        raise argparse.ArgumentTypeError(f"CPUs {text!r}: this machine has {sorted(cpus)}")
    return stack, load, front


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
    parser.add_argument(
        "--connections", type=int, default=CONNECTIONS, help="hey's, for the capacity and the loads"
    )
    parser.add_argument(
        "--capacity-connections",
        type=int,
        default=CAPACITY_CONNECTIONS,
        help="hey's for the capacity (back to back): enough to keep the api busy, few enough"
        " that the api's own connection handling does not lower it",
    )
    parser.add_argument(
        "--cores",
        type=_cores,
        default=_cores(CORES_DEFAULT),
        help="STACK:LOAD, the CPU of the stack and the CPU of hey; off: not pinned",
    )
    parser.add_argument(
        "--api-cpus",
        type=float,
        default=API_CPUS_DEFAULT,
        help="cap the api container's CPU; 0: no cap",
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
    name += f"-c{args.connections}" if args.connections != CONNECTIONS else ""
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    old = REPORT.read_text() if REPORT.exists() else ""
    REPORT.write_text(keep_reading(markdown(results), old))
    print(markdown([result]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
