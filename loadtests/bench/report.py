"""The ratios of ``make bench`` from the figures its steps wrote.

    python -m loadtests.bench.report RESULTS_DIR [--settings TEXT]

Each ratio is printed with its inputs; a ratio whose pattern is not present
(or whose step failed) is ``n/a``. Also written to ``RESULTS_DIR/ratios.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtests.compare import machine_description

Figures = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Ratio:
    """One ratio: its name, what it means, and the target it is held to."""

    name: str
    meaning: str
    target: str
    compute: Callable[[Figures], tuple[float, str] | None]


def _need(figures: Figures, *names: str) -> bool:
    return all(name in figures for name in names)


# How each figure a ratio can compare is shown in its inputs.
_SHOWN = {"rps": "{:.0f} req/s", "p50_ms": "p50 {:.2f} ms"}


def _ratio_of(
    figure: str, numerator: str, denominator: str, shown_as: tuple[str, str] | None = None
) -> Callable[[Figures], tuple[float, str] | None]:
    """The ratio of two targets' ``figure``, each target named as its figure
    file is (and shown in the inputs as ``shown_as``, when given)."""
    shown = shown_as or (numerator, denominator)

    def compute(f: Figures) -> tuple[float, str] | None:
        if not _need(f, numerator, denominator):
            return None
        a, b = f[numerator][figure], f[denominator][figure]
        return (
            a / b,
            f"{shown[0]} {_SHOWN[figure].format(a)} / {shown[1]} {_SHOWN[figure].format(b)}",
        )

    return compute


def _rps_over(
    numerator: str, denominator: str, shown_as: tuple[str, str] | None = None
) -> Callable[[Figures], tuple[float, str] | None]:
    """The ratio of two targets' requests/s."""
    return _ratio_of("rps", numerator, denominator, shown_as)


def _p50_over(numerator: str, denominator: str) -> Callable[[Figures], tuple[float, str] | None]:
    """The ratio of two targets' p50."""
    return _ratio_of("p50_ms", numerator, denominator)


def _batch(f: Figures) -> tuple[float, str] | None:
    if not _need(f, "batch"):
        return None
    with_model = f["batch"]["predict_rows_per_s_median"]
    without = f["batch"]["db_only_rows_per_s_median"]
    return with_model / without, (
        f"median of {f['batch']['rounds']:.0f} rounds over {f['batch']['rows']:.0f} rows: "
        f"{with_model:.0f} rows/s / {without:.0f} rows/s without inference"
    )


def _raw_inference(f: Figures) -> tuple[float, str] | None:
    if not _need(f, "onnxruntime in-process"):
        return None
    single = f["onnxruntime in-process"]["rows_per_s_single"]
    batched = f["onnxruntime in-process"]["rows_per_s_batch256"]
    return (
        batched / single,
        f"{single:.0f} rows/s one row a call, {batched:.0f} rows/s in 256-row batches",
    )


RATIOS = [
    Ratio(
        "transport ceiling",
        "share of nginx's rate (a fixed answer, C) web-single keeps, one server process",
        ">= 0.5",
        _rps_over("web-single", "nginx"),
    ),
    Ratio(
        "transport ceiling, 2 processes",
        "the same with the api in two server processes (WEB_CONCURRENCY=2)",
        ">= 0.5",
        _rps_over("web-single, 2 processes", "nginx"),
    ),
    Ratio(
        "server floor",
        "share of nginx's rate a bare ASGI app (the fixed answer, no framework) keeps under"
        " uvicorn, one process: the most any app served by uvicorn here could keep",
        "(report)",
        _rps_over("bare ASGI app", "nginx"),
    ),
    Ratio(
        "server floor, granian RSGI",
        "the same for a bare RSGI app under granian (its own interface, a Rust HTTP core)",
        "(report)",
        _rps_over("bare RSGI app", "nginx"),
    ),
    Ratio(
        "server processes",
        "web-single in two server processes over one",
        "(report)",
        _rps_over("web-single, 2 processes", "web-single"),
    ),
    Ratio(
        "granian server",
        "web-single's app under granian (a Rust HTTP core) over uvicorn, one process each",
        "(report)",
        _rps_over("web-single, granian", "web-single"),
    ),
    Ratio(
        "granian server, 2 processes",
        "the same, two worker processes each",
        "(report)",
        _rps_over("web-single, granian 2 workers", "web-single, 2 processes"),
    ),
    Ratio(
        "serving overhead",
        "share of a bare endpoint's rate web-single keeps",
        ">= 0.70",
        _rps_over("web-single", "bare", ("web-single", "bare endpoint")),
    ),
    Ratio(
        "framework",
        "the apis' stack (request id, metrics, access log) over a plain FastAPI route, both bare",
        "(report)",
        _rps_over("bare", "bare-fastapi", ("bare endpoint", "plain FastAPI route")),
    ),
    Ratio(
        "hop cost",
        "sync p50 over web-single p50 (calls to the predictor coalesced, the default)",
        "<= 1.5",
        _p50_over("sync", "web-single"),
    ),
    Ratio(
        "hop cost, one call a request",
        "the same with coalescing off (PEER_MAX_CALLS_IN_FLIGHT=0)",
        "(report)",
        _p50_over("sync one call a request", "web-single"),
    ),
    Ratio(
        "hop at rest",
        "sync p50 over web-single p50, one connection (no queueing, nothing to coalesce)",
        "(report)",
        _p50_over("sync, 1 connection", "web-single, 1 connection"),
    ),
    Ratio(
        "hop cost over REST",
        "sync p50 over web-single p50, the api calling the predictor's REST face",
        "(report)",
        _p50_over("sync over REST", "web-single"),
    ),
    Ratio(
        "hop at rest over REST",
        "the same, one connection",
        "(report)",
        _p50_over("sync over REST, 1 connection", "web-single, 1 connection"),
    ),
    Ratio(
        "cache value",
        "prediction-cache hit p50 over miss p50",
        "<= 0.5",
        _p50_over("cache-hit", "cache-miss"),
    ),
    Ratio("batch", "rows/s with inference over the database-only rows/s", "(report)", _batch),
    Ratio(
        "scaling",
        "a CPU-bound predictor (iris-boosted, REST) in two replicas over one, each replica "
        "loaded by its own address; 2 cores shared with the load generator",
        "(report)",
        _rps_over("predictor, 2 replicas", "predictor, 1 replica"),
    ),
    Ratio(
        "raw inference",
        "batched over single-row onnxruntime rows/s (the physical limit)",
        "(report)",
        _raw_inference,
    ),
]


def load_figures(results: Path) -> Figures:
    """Every ``*.json`` figure file in ``results``, by the name it carries."""
    figures: Figures = {}
    for path in sorted(results.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        figures[data.pop("name", path.stem)] = data
    return figures


def table(figures: Figures, settings: str) -> str:
    """The ratios as a markdown table, with the machine and settings."""
    lines = [
        f"Machine: {machine_description()}  ",
        f"Load: {settings}",
        "",
        "| ratio | value | target | inputs |",
        "|---|---:|---|---|",
    ]
    for ratio in RATIOS:
        result = ratio.compute(figures)
        value, inputs = (f"{result[0]:.2f}", result[1]) if result else ("n/a", "not measured")
        lines.append(f"| {ratio.name}: {ratio.meaning} | {value} | {ratio.target} | {inputs} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Command line: print the ratios and write ratios.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--settings", default="")
    args = parser.parse_args()
    text = table(load_figures(args.results), args.settings)
    (args.results / "ratios.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
