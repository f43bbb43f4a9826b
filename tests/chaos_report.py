"""The fault suite's report (``loadtests/reports/chaos.md``) from its results (tests/chaos.py)."""

from collections.abc import Iterable
from typing import Protocol

#: What a reader needs to know to read a pattern's rows (the load cannot show it).
NOTES = {
    "parallel": "its `/predict` needs 2 of its 3 members to answer within 0.5 s "
    "(`PREDICT_TIMEOUT_S`); on a loaded machine two members miss that deadline at once now "
    "and then, and the request fails with a 504 whether or not a fault is under way, more "
    "often while a predictor process starts (its start takes a core for seconds). The 504s "
    "in its rows are such requests: the api's log lines (kept in loadtests/results/chaos/ "
    "when a 2-replica fault failed requests) name the members that missed the deadline.",
    "data-cache": "the load sends the schema's example ids (17, 42), which stay in the Redis "
    "cache, so a stopped PostgreSQL is not seen; with Redis stopped the api reads PostgreSQL "
    "instead.",
}
VERBS = {
    "stop": "stop (SIGTERM)",
    "kill": "kill (SIGKILL)",
    "slow": "slowed (recreated with a delay)",
}


class Result(Protocol):
    """The fields of :class:`tests.chaos.FaultResult` the report shows."""

    pattern: str
    service: str
    how: str
    replicas: int
    requests: int
    failed: int
    recovery_s: float | None
    retries: int | None
    rejoined_s: float | None
    lost: int | None
    duplicated: int | None
    failures: dict[str, int]


def _cell(value: object, digits: int = 1) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _stop_first(item: tuple[tuple[str, str, str], object]) -> tuple[str, str, bool]:
    (pattern, service, how), _ = item
    return pattern, service, how != "stop"


def comparison(results: Iterable[Result]) -> list[str]:
    """Rows of failed requests with one replica beside those with more, per service and fault."""
    by_key: dict[tuple[str, str, str], dict[int, Result]] = {}
    for r in results:
        by_key.setdefault((r.pattern, r.service, r.how), {})[r.replicas] = r
    rows = []
    for (pattern, service, how), runs in sorted(by_key.items(), key=_stop_first):
        more = [n for n in runs if n > 1]
        if not more or 1 not in runs:
            continue
        one, two = runs[1], runs[max(more)]
        rows.append(
            f"| {pattern} | {service} | {VERBS.get(how, how)} | {one.failed} of {one.requests} "
            f"| {two.failed} of {two.requests} | {_cell(two.retries)} | "
            f"{_cell(two.rejoined_s) or 'not seen'} |"
        )
    if not rows:
        return []
    return [
        "## One replica vs two: failed requests",
        "",
        "The same fault on the same stack, first with one replica of every called tier, then "
        "with two (one of them faulted). *Retried*: calls the callers retried on the other "
        "replica (`mlsp_outbound_retries_total`). *Back in rotation*: seconds from the restart "
        "until the restarted replica answered calls again.",
        "",
        "| pattern | container | fault | failed, 1 replica | failed, 2 replicas | retried "
        "| back in rotation (s) |",
        "|---|---|---|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def _reasons(failures: dict[str, int]) -> str:
    """``{"503 dependency_unavailable": 3}`` -> ``503 dependency_unavailable: 3``."""
    return ", ".join(f"{why or 'no answer'}: {n}" for why, n in sorted(failures.items()))


def every_fault(results: Iterable[Result]) -> list[str]:
    """One row per fault, the one-replica and two-replica rows of a service side by side."""
    lines = [
        "## Every fault",
        "",
        "| pattern | container | fault | replicas | requests | failed | retried | recovery (s) "
        "| back in rotation (s) | lost | duplicated | why they failed |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    ordered = sorted(results, key=lambda r: (r.pattern, r.service, r.how != "stop", r.replicas))
    for r in ordered:
        if r.service.startswith("("):  # no fault was run: a note in the service column
            lines.append(f"| {r.pattern} | {r.service} | | | | | | | | | | |")
            continue
        recovery = "not recovered" if r.recovery_s is None else f"{r.recovery_s:.1f}"
        rejoined = _cell(r.rejoined_s) or ("not seen" if r.replicas > 1 else "")
        lines.append(
            f"| {r.pattern} | {r.service} | {VERBS.get(r.how, r.how)} | {r.replicas} | "
            f"{r.requests} | {r.failed} | {_cell(r.retries)} | {recovery} | {rejoined} | "
            f"{_cell(r.lost)} | {_cell(r.duplicated)} | "
            f"{_reasons(r.failures) or ('not recorded' if r.failed else '')} |"
        )
    return lines


def markdown(results: list[Result], settings: str, down_s: float, steady_s: float) -> str:
    """The report: what was done and how to read it, the comparison, every fault, notes."""
    intro = [
        "# Faults under load",
        "",
        f"Each internal container stopped (SIGTERM: it drains) or killed (SIGKILL: a crash), "
        f"left down {down_s:g} s and started again, one at a time, under a steady load. "
        "With one replica (the compose files' default) the whole service goes down; with two "
        "(the called tiers of the patterns that answer at once, `make chaos REPLICAS=2`), one "
        "replica does and the other must answer every request: the verdict fails a fault "
        "with 2 replicas that fails any request. With one, failures are bounded by the "
        "seconds the service was down.",
        "",
        f"*Failed*: requests that failed from the fault until recovery. *Recovery*: seconds "
        f"from the restart until requests succeed again ({steady_s:g} s without a failure) "
        "and, for queued work, the work accepted before the restart is done. "
        "*Lost / duplicated*: accepted jobs or rows never finished, or finished twice, over "
        "the whole run of the pattern (must be 0).",
        "",
        f"Settings: {settings}.",
        "",
    ]
    patterns = {r.pattern.split(" ")[0] for r in results}
    notes = [f"{name}: {text}\n" for name, text in sorted(NOTES.items()) if name in patterns]
    return "\n".join([*intro, *comparison(results), *every_fault(results), "", *notes]) + "\n"
