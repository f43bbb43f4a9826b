"""Where a request's time goes: a per-hop breakdown read from Prometheus after a run.

    python -m loadtests.breakdown PROMETHEUS_URL STATS_PREFIX --start T0 --end T1

For the run's window it reads, per service, the time spent answering requests
(``mlsp_http_request_duration_seconds``, and ``mlsp_grpc_request_duration_seconds``
for gRPC predictors), the time spent waiting on other services
(``mlsp_outbound_duration_seconds``) and the time in each stage it owns
(``mlsp_stage_duration_seconds``), all per client request, and sets them beside
the mean the client observed (Locust's ``Average Response Time``):

* ``<service>``: its own time, i.e. its request time minus its calls to others;
* ``waiting for a shared call``: time requests waited for a coalesced call to a
  peer to leave (:mod:`shared.v2.coalesce`);
* ``between services``: the rest of the time on peers not spent inside the callee
  (network, (de)serialisation; with shared calls also the callee's time for every
  request a call carried after the first: the callee counts a call once);
* ``client side``: what the servers did not see: the network to the api, time
  queued before the api's first byte of work, the load generator itself.

A run with an end-to-end entry (async jobs) gets a second row, per job: the
submit, the queue wait, the worker's time and the rest (:func:`measure_jobs`).
Each row also says how hard the api was pressed (:func:`pressure`): the requests
it shed past its in-flight bound, the most it had in flight, the longest its queue was.

Writes ``<prefix>_breakdown.json``, ``.md`` and ``.png`` (a stacked bar).
Standard library only for the queries; matplotlib for the chart.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

NOT_PROBES = 'route!~"/health.*|/metrics"'
ENTRY_SERVICE = "api"
CLIENT_SIDE = "client side"
BETWEEN = "between services"
QUEUED = "waiting for a shared call"
POLLING = "polling and client side"


@dataclass
class Breakdown:
    """Mean ms per client request: client-observed, then each segment and stage."""

    pattern: str
    client_mean_ms: float
    requests: int
    segments: dict[str, float] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    note: str = ""
    pressure: dict[str, float] = field(default_factory=dict)

    @property
    def attributed_ms(self) -> float:
        """The part of the client's mean that the servers measured."""
        return sum(v for k, v in self.segments.items() if k not in (CLIENT_SIDE, POLLING))


def query(prometheus: str, expr: str, at: float) -> dict[tuple[str, ...], float]:
    """An instant query; values by the tuple of their label values (sorted by label name)."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(url, timeout=10) as response:
        data = json.load(response)["data"]["result"]
    return {
        tuple(value for _, value in sorted(item["metric"].items())): float(item["value"][1])
        for item in data
    }


def _by_service(
    prometheus: str, metric: str, selector: str, window: str, at: float
) -> dict[str, float]:
    expr = f"sum by (service) (increase({metric}{{{selector}}}[{window}]))"
    return {labels[0]: value for labels, value in query(prometheus, expr, at).items() if labels}


def _on_peers(prometheus: str, window: str, at: float) -> dict[str, float]:
    """Per service, the time its requests spent on peers: each request's own view
    (``mlsp_outbound_request_duration_seconds``) where the caller keeps it, else the calls'."""
    by_pair: dict[tuple[str, ...], float] = {}
    for metric in (
        "mlsp_outbound_duration_seconds_sum",
        "mlsp_outbound_request_duration_seconds_sum",
    ):
        expr = f"sum by (peer, service) (increase({metric}[{window}]))"
        by_pair.update(query(prometheus, expr, at))  # the request's view replaces the calls'
    totals: dict[str, float] = {}
    for labels, value in by_pair.items():
        totals[labels[-1]] = totals.get(labels[-1], 0.0) + value
    return totals


def measure(
    prometheus: str, pattern: str, client_mean_ms: float, start: float, end: float
) -> Breakdown:
    """The breakdown of the run between ``start`` and ``end`` (Unix seconds)."""
    window = f"{max(int(end - start), 1)}s"
    http = _by_service(
        prometheus, "mlsp_http_request_duration_seconds_sum", NOT_PROBES, window, end
    )
    count = _by_service(
        prometheus, "mlsp_http_request_duration_seconds_count", NOT_PROBES, window, end
    )
    grpc = _by_service(
        prometheus, "mlsp_grpc_request_duration_seconds_sum", 'method="ModelInfer"', window, end
    )
    outbound = _on_peers(prometheus, window, end)
    queued = sum(
        _by_service(prometheus, "mlsp_outbound_queue_seconds_sum", "", window, end).values()
    )
    requests = count.get(ENTRY_SERVICE, 0.0)
    result = Breakdown(pattern, client_mean_ms, round(requests))
    if requests <= 0:
        return result
    per_request = 1000.0 / requests
    notes = [_mixed_traffic_note(prometheus, window, end, requests)]
    if outbound.get(ENTRY_SERVICE, 0.0) > http.get(ENTRY_SERVICE, 0.0):
        notes.append(  # more time waiting on peers than answering requests: work off-request
            f"the {ENTRY_SERVICE} also calls its peers outside requests (in-process jobs): "
            f"'{BETWEEN}' holds that work too, so the segments overstate a request"
        )
    result.note = "; ".join(note for note in notes if note)
    services = sorted(set(http) | set(grpc), key=lambda s: (s != ENTRY_SERVICE, s))
    inside = {s: http.get(s, 0.0) + grpc.get(s, 0.0) for s in services}
    for service in services:
        own = inside[service] - outbound.get(service, 0.0)
        result.segments[service] = max(own, 0.0) * per_request
    hops = sum(outbound.values()) - sum(v for s, v in inside.items() if s != ENTRY_SERVICE)
    if queued > 0:
        result.segments[QUEUED] = queued * per_request
        hops -= queued
    if outbound:
        result.segments[BETWEEN] = max(hops, 0.0) * per_request
    result.segments[CLIENT_SIDE] = client_mean_ms - result.attributed_ms
    result.pressure = pressure(prometheus, window, end)
    stage_expr = f"sum by (service, stage) (increase(mlsp_stage_duration_seconds_sum[{window}]))"
    for labels, value in sorted(query(prometheus, stage_expr, end).items()):
        service, stage = labels[0], labels[1]
        result.stages[f"{service}: {stage}"] = value * per_request
    return result


def pressure(prometheus: str, window: str, at: float) -> dict[str, float]:
    """The api's requests shed and most in flight, and the longest queue, over the window."""
    found: dict[str, float] = {}
    shed = _by_service(prometheus, "mlsp_http_requests_shed_total", "", window, at)
    if ENTRY_SERVICE in shed:
        found["requests shed"] = shed[ENTRY_SERVICE]
    for name, expr in (
        (
            "most in flight",
            f'max(max_over_time(mlsp_http_requests_in_flight{{service="{ENTRY_SERVICE}"}}'
            f"[{window}]))",
        ),
        ("longest queue", f"max(max_over_time(mlsp_queue_depth[{window}]))"),
    ):
        values = query(prometheus, expr, at)
        if values:
            found[name] = max(values.values())
    return found


def measure_jobs(
    prometheus: str, pattern: str, e2e_mean_ms: float, start: float, end: float
) -> Breakdown:
    """Where an async job's end-to-end time goes: submit, queue, worker, the rest.

    Per finished job: the api's time on the submit (``POST`` requests), the
    worker's ``queue_wait`` and ``job`` stages; ``polling and client side`` is
    what is left of the client's end-to-end mean (up to one poll interval, the
    poll requests themselves, the load generator).
    """
    window = f"{max(int(end - start), 1)}s"
    jobs = _by_service(prometheus, "mlsp_stage_duration_seconds_count", 'stage="job"', window, end)
    n_jobs = sum(jobs.values())
    result = Breakdown(f"{pattern} (job)", e2e_mean_ms, round(n_jobs))
    if n_jobs <= 0:
        return result
    per_job = 1000.0 / n_jobs
    submits = _by_service(
        prometheus,
        "mlsp_http_request_duration_seconds_sum",
        f'{NOT_PROBES},method="POST"',
        window,
        end,
    )
    result.segments[f"{ENTRY_SERVICE} (submit)"] = submits.get(ENTRY_SERVICE, 0.0) * per_job
    for stage, segment in (("queue_wait", "queue wait"), ("job", "worker")):
        spent = _by_service(
            prometheus, "mlsp_stage_duration_seconds_sum", f'stage="{stage}"', window, end
        )
        result.segments[segment] = sum(spent.values()) * per_job
    result.segments[POLLING] = e2e_mean_ms - result.attributed_ms
    return result


def _mixed_traffic_note(prometheus: str, window: str, at: float, requests: float) -> str:
    """Say so when the api answered more than one kind of request (e.g. jobs beside predicts).

    The segments are per api request of any kind, and work done outside requests
    (in-process jobs calling the predictors) lands in ``between services``.
    """
    expr = (
        f"sum by (route, method) (increase(mlsp_http_request_duration_seconds_count"
        f'{{{NOT_PROBES},service="{ENTRY_SERVICE}"}}[{window}]))'
    )
    routes = {f"{method} {route}": n for (method, route), n in query(prometheus, expr, at).items()}
    if len(routes) < 2:
        return ""
    mix = ", ".join(f"{name} {n / requests:.0%}" for name, n in sorted(routes.items()))
    return f"mixed traffic ({mix}): segments are per api request of any kind"


def _stats_rows(stats_prefix: str) -> list[dict[str, str]]:
    with open(f"{stats_prefix}_stats.csv", newline="") as file:
        return [r for r in csv.DictReader(file) if r["Name"] != "Aggregated"]


def client_mean(stats_prefix: str) -> float:
    """The mean (ms) over all the run's requests (entries weighted by their counts).

    All of them, as the servers' figures are: a cache's hits and misses, an async
    pattern's submits and polls.
    """
    rows = [r for r in _stats_rows(stats_prefix) if r["Type"] != "E2E"]
    total = sum(int(r["Request Count"]) for r in rows)
    if not total:
        return 0.0
    spent = sum(int(r["Request Count"]) * float(r["Average Response Time"]) for r in rows)
    return spent / total


def e2e_mean(stats_prefix: str) -> float | None:
    """The mean (ms) of the run's end-to-end entry (async jobs), if it has one."""
    rows = [r for r in _stats_rows(stats_prefix) if r["Type"] == "E2E"]
    return float(rows[0]["Average Response Time"]) if rows else None


def markdown(breakdowns: Sequence[Breakdown]) -> str:
    """The breakdowns as markdown: one table of segments, then each pattern's stages."""
    lines = ["| pattern | client mean (ms) | server-measured | segments (ms per request) |"]
    lines.append("|---|---:|---:|---|")
    for b in breakdowns:
        parts = ", ".join(f"{name} {value:.3f}" for name, value in b.segments.items())
        share = b.attributed_ms / b.client_mean_ms if b.client_mean_ms else 0.0
        lines.append(f"| {b.pattern} | {b.client_mean_ms:.3f} | {share:.0%} | {parts} |")
    for b in breakdowns:
        if b.note:
            lines.append(f"\n{b.pattern}: {b.note}")
    for b in breakdowns:
        if b.pressure:
            shown = ", ".join(f"{name} {value:.0f}" for name, value in b.pressure.items())
            lines.append(f"\n{b.pattern} load on the api: {shown}")
    for b in breakdowns:
        if b.stages:
            stages = ", ".join(f"{name} {value:.3f}" for name, value in b.stages.items())
            lines.append(f"\n{b.pattern} stages (ms per request): {stages}")
    return "\n".join(lines) + "\n"


def chart(breakdowns: Sequence[Breakdown], path: Path) -> None:
    """One stacked bar per pattern: each segment of its client-observed mean."""
    import matplotlib  # noqa: PLC0415 - only the chart needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = sorted({name for b in breakdowns for name in b.segments}, key=_segment_order)
    # Fixed colours for the segments every chart has; distinct ones for the services.
    fixed = {BETWEEN: "tab:red", QUEUED: "tab:pink", CLIENT_SIDE: "lightgrey", POLLING: "darkgrey"}
    taken = {matplotlib.colors.to_rgb(c) for c in fixed.values()}
    palette = iter(  # no greys, none of the fixed ones
        c for c in plt.get_cmap("tab20").colors if c[0] != c[1] and tuple(c) not in taken
    )
    colours = {name: fixed.get(name) or next(palette, None) for name in names}
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(breakdowns), 4.5))
    bottoms = [0.0] * len(breakdowns)
    for name in names:
        values = [max(b.segments.get(name, 0.0), 0.0) for b in breakdowns]
        ax.bar(
            [b.pattern for b in breakdowns], values, bottom=bottoms, label=name, color=colours[name]
        )
        bottoms = [x + y for x, y in zip(bottoms, values, strict=True)]
    ax.set_ylabel("ms per request (mean)")
    ax.set_title("where a request's time goes")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _segment_order(name: str) -> tuple[int, str]:
    order = {ENTRY_SERVICE: 0, QUEUED: 2, BETWEEN: 2, CLIENT_SIDE: 3, POLLING: 3}
    return order.get(name, 1), name


def write(breakdowns: Sequence[Breakdown], prefix: str) -> None:
    """``<prefix>_breakdown.json``, ``.md`` and ``.png``."""
    Path(f"{prefix}_breakdown.json").write_text(json.dumps([asdict(b) for b in breakdowns]))
    Path(f"{prefix}_breakdown.md").write_text(markdown(breakdowns))
    chart(breakdowns, Path(f"{prefix}_breakdown.png"))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: measure one run, write its breakdown, print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prometheus")
    parser.add_argument("prefix", help="the run's --csv prefix")
    parser.add_argument("--pattern", default="")
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--end", type=float, required=True)
    args = parser.parse_args(argv)
    pattern = args.pattern or Path(args.prefix).name
    results = [measure(args.prometheus, pattern, client_mean(args.prefix), args.start, args.end)]
    job_mean = e2e_mean(args.prefix)
    if job_mean is not None:
        jobs = measure_jobs(args.prometheus, pattern, job_mean, args.start, args.end)
        if jobs.requests:  # jobs run by RQ workers; in-process jobs have no worker row
            results.append(jobs)
    write(results, args.prefix)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
