"""The overload run's report: its rows, the goals per shedding setting, and the rule that
says when a goal can be decided at all.

A goal reads a load (80% or 2x of the capacity); it is "met" or "NOT met" only when that
load really went out: hey sent at least :data:`SENT_SHARE_NEEDED` of its rate (2x: at
least 1.9x the capacity). Otherwise it is "not decided", and the report says which load
fell short and by how much: a generator that lags does not overload the api, and an
answer to half the load says nothing of the api at twice its capacity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: A load counts as sent when this share of its rate went out (2x: at least 1.9x capacity).
SENT_SHARE_NEEDED = 0.95


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


def shortfall(run: dict[str, Any], capacity: float) -> str:
    """Why ``run``'s load does not count as sent; "" when it does (at least
    :data:`SENT_SHARE_NEEDED` of its rate went out)."""
    sent, rate = run["offered_per_s"], run["rate"]
    if sent >= SENT_SHARE_NEEDED * rate:
        return ""
    return (
        f"{run['load']} sent {sent / capacity:.2f}x capacity ({sent:.0f}/s), under the "
        f"{SENT_SHARE_NEEDED * rate / capacity:.2f}x it needs"
    )


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _both(a: float | None, b: float | None, check: Callable[[float, float], bool]) -> bool:
    """``check(a, b)``; False when either figure is missing (no such answers were seen)."""
    return a is not None and b is not None and check(a, b)


def goals(result: dict[str, Any], shedding: str) -> list[str]:
    """The issue's goals for the runs with ``shedding``: each met, NOT met, or not decided
    (a load it reads was sent short; the first line then says which and by how much)."""
    runs = {(r["shedding"], r["load"]): r for r in result["runs"]}
    at_80, at_2x = runs.get((shedding, "80%")), runs.get((shedding, "2x"))
    if not (at_80 and at_2x):
        return []
    capacity = at_2x.get("capacity", result["capacity"])
    short = {"80%": shortfall(at_80, capacity), "2x": shortfall(at_2x, capacity)}
    answered = (set(at_80["statuses"]) | set(at_2x["statuses"])) - {"not sent"}
    shed_p99 = at_2x["shed_p99_ms"]
    checks = [  # (goal, the loads it reads, met, the figures shown)
        (
            "no 503 at 80%",
            ("80%",),
            not at_80["statuses"].get("503"),
            f"{at_80['statuses'].get('503', 0)} of {sum(at_80['statuses'].values())}",
        ),
        (
            "goodput at 2x >= 90% of capacity",
            ("2x",),
            at_2x["goodput_per_s"] >= 0.9 * capacity,
            f"{at_2x['goodput_per_s'] / capacity:.0%}",
        ),
        (
            "accepted p99 at 2x <= 3x the p99 at 80%",
            ("80%", "2x"),
            _both(at_2x["accepted_p99_ms"], at_80["accepted_p99_ms"], lambda a, b: a <= 3 * b),
            f"{_ms(at_2x['accepted_p99_ms'])} vs {_ms(at_80['accepted_p99_ms'])} ms",
        ),
        (
            "503 p99 < 5 ms",
            ("2x",),
            _both(shed_p99, 5.0, lambda a, b: a < b),
            "no 503: nothing refused" if shed_p99 is None else f"{shed_p99:.1f} ms",
        ),
        (
            "api memory growth < 20 MB",
            ("2x",),
            _both(at_2x.get("growth_mb"), 20.0, lambda a, b: a < b),
            f"{at_2x.get('growth_mb', 0):.1f} MB",
        ),
        (
            "only 200 and 503 (of the answers)",
            ("2x",),
            answered <= {"200", "503"},
            ", ".join(sorted(answered)),
        ),
    ]
    lines = []
    if any(short.values()):
        why = "; ".join(reason for reason in short.values() if reason)
        lines.append(f"- not decided where a load was sent short: {why}")
    for name, reads, ok, shown in checks:
        decided = not any(short[load] for load in reads)
        verdict = ("met" if ok else "NOT met") if decided else "not decided"
        lines.append(f"- {verdict}: {name} ({shown})")
    return lines


def _setup(result: dict[str, Any]) -> str:
    """Where the stack and the generator ran, and the api's CPU cap."""
    cores = result.get("cores") or {}
    pinned = (
        f"the stack pinned to CPU {cores['stack']}, hey to CPU {cores['load']}"
        if cores.get("stack") is not None
        else "the stack and hey on any CPU"
    )
    if cores.get("front") not in (None, cores.get("stack")):
        pinned += f", the edge (and any docker-proxy) to CPU {cores['front']}"
    if "docker_proxy" in result:
        pinned += ", through docker-proxy" if result["docker_proxy"] else ", no docker-proxy"
    api_cpus, period_us = result.get("api_cpus"), result.get("cpu_period_us")
    if not api_cpus:
        return pinned
    period = f"{period_us / 1000:g} ms" if period_us else "100 ms"
    return f"{pinned}, the api capped at {api_cpus:g} CPU (a quota per {period})"


HEADER = """\
# Overload: open-loop load at 80% and 2x capacity, by way of shedding

Generated by `make overload PATTERN=..` (loadtests/bench/overload.py, the report by
loadtests/bench/overload_report.py); the reading below the tables is written by hand and
kept when they are rebuilt.
The load: hey (loadtests/hey.py), 1024 workers (or as many as a section's heading says),
each on its own keep-alive connection at a fixed rate (`hey -q`, the rate / 1024), shared
by 64 hey processes started apart, POSTing one iris row to the api's published port on
127.0.0.1. Every container of the stack (api, predictor, edge) is pinned to one CPU, hey
and the harness to the other: the generator does not take the api's CPU. The api is
capped at a share of its CPU (a quota) so that hey, on one CPU, can send twice its
capacity; the edge, given priority on that CPU, has the rest of it, as a load balancer in
front of a real api has cores of its own. The capacity is what 64 connections get back to
back (a closed loop): the api's from the stack with no shedding, each edge's through that
edge (its hop is part of it); each setting is loaded at 80% and 2x of its own.
Shedding: `count N` is the in-flight bound alone (MAX_REQUESTS_IN_FLIGHT=N, the delay
rule off); `delay T ms, cap N` is the queueing-delay rule (OVERLOAD_DELAY_TARGET_MS=T)
with the count as a hard cap; `none` sheds nothing; `edge M:Q` is HAProxy in front of the
api (compose/edge.yaml, `make up EDGE=1`): M requests at once to the api, Q more waiting
in HAProxy, the rest refused 503 in C (the api's own bound off).
`sent/s` is what hey sent (requests it listed, each with an HTTP answer: one that got
none is not listed, so it counts as not sent); a worker whose answer comes later than its
interval sends late and fewer, so `sent` can fall short of `due`. A goal is met or NOT
met only when the loads it reads were sent at 95% of their rate or more (2x: at least
1.9x capacity); otherwise it is "not decided". Latencies from each request's send.
`load avg`: the machine's 1, 5, 15 min load average after the row."""


#: Where the hand-written reading starts: a rebuilt report keeps the old one's from here on.
READING_MARKER = "<!-- the reading: written by hand, kept when the tables are rebuilt -->"


def keep_reading(generated: str, old: str) -> str:
    """``generated`` followed by ``old``'s reading (from :data:`READING_MARKER` on), if any."""
    _, marker, reading = old.partition(READING_MARKER)
    return f"{generated}\n{marker}{reading}" if marker else generated


def _capacities(result: dict[str, Any]) -> str:
    """``4666 req/s`` or, when settings differ (an edge measured through itself),
    ``api 4666 req/s; edge 64:16 4012 req/s``."""
    found = result.get("capacities") or {}
    own = {name: c for name, c in found.items() if c != result["capacity"]}
    if not own:
        return f"{result['capacity']:.0f} req/s"
    return "; ".join(
        [f"api {result['capacity']:.0f} req/s", *(f"{n} {c:.0f} req/s" for n, c in own.items())]
    )


def markdown(results: list[dict[str, Any]]) -> str:
    """The report: per pattern, its settings, one row per shedding and load, the goals."""
    lines = [HEADER]
    for result in results:
        lines += [
            "",
            f"## {result['pattern']}, {result.get('generator', 'hey')}, {_setup(result)}",
            "",
            f"{result['date']}; capacity {_capacities(result)} ({result['capacity_how']});"
            f" {result['seconds']} s per setting and load, in {result.get('rounds', 1)} turns"
            f" (the settings' stacks all up, loaded one at a time, turn after turn);"
            f" {result.get('generator', 'hey')}; load average"
            f" {result.get('load_average_before', '?')} before,"
            f" {result.get('load_average_after', '?')} after.",
            "",
            "| shedding | load | due/s | sent/s | sent x capacity | goodput/s | of capacity "
            "| accepted p50 ms | accepted p99 ms | 503 p99 ms | statuses "
            "| api memory growth (peak) MB | api CPU µs per 200 | edge CPU µs per request "
            "| load avg |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
        ]
        for run in result["runs"]:
            memory = (
                f"{run['growth_mb']:.1f} ({run['peak_growth_mb']:.1f})"
                if "growth_mb" in run
                else ""
            )
            statuses = ", ".join(f"{s}: {n}" for s, n in run["statuses"].items())
            capacity = run.get("capacity", result["capacity"])
            lines.append(
                f"| {run['shedding']} | {run['load']} | {run['rate']:.0f} "
                f"| {run['offered_per_s']:.0f} | {run['offered_per_s'] / capacity:.2f}x "
                f"| {run['goodput_per_s']:.0f} | {run['goodput_per_s'] / capacity:.0%} "
                f"| {_ms(run['accepted_p50_ms'])} | {_ms(run['accepted_p99_ms'])} "
                f"| {_ms(run['shed_p99_ms'])} | {statuses} | {memory} "
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
