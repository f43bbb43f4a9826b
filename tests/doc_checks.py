"""Checks of the Markdown pages against what they cite: report figures and make targets.

A *quoted figure* is a number followed by a unit of measure — ``req/s``, ``rows/s``,
``jobs/s``, ``ms``, ``µs``, ``x`` (a ratio, ``1.45x``) or ``%`` — or a number in
thousands (``4.6k``), written in a *block* of a page (a paragraph, a list item or a
table row) that links a report under ``loadtests/reports/``. Inline code is left out
(a command's settings, ``DURATION=30s``, are not measurements), and so are fenced code
blocks. Such a figure must be in one of the reports its block links: the report has a
number that, rounded to as many decimals as the page writes, is the page's number
(``1794`` is in a report saying ``1794.1``; ``4.6k`` is in one saying ``4612``).
A block that quotes a measurement (a rate, a number in thousands, or any figure with
decimals: ``2.73 ms``, ``96.0%``; not a bound like ``within 20%``) must also give the
run's date (``2026-12-03``), as its report does. A page's figure not found in its
report is a stale copy. A rate, a ratio or a number in thousands in a block that links
no report is a copy that nothing checks: also a problem.
"""

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REPORTS = REPO_ROOT / "loadtests" / "reports"

_UNIT = r"(?:req/s|rows/s|jobs/s|ms|µs|us|x|%)"
_FIGURE = re.compile(
    rf"(?<![\w.,/])(?P<number>\d[\d,]*(?:\.\d+)?)(?:\s?(?P<unit>{_UNIT})|(?P<k>k))(?![\w/])"
)
# Units only a measurement has; a setting in these units is written as code (``RATE=400``).
MEASURED_ONLY = frozenset({"req/s", "rows/s", "jobs/s", "k"})
_REPORT_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
_LINK = re.compile(r"\]\((?P<target>[^)\s#]+)(?:#[^)]*)?\)")
_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
_INLINE_CODE = re.compile(r"`[^`]*`")
_MAKE_COMMAND = re.compile(r"\bmake[ \t]+(?P<words>(?:[-\w.]+=\S+[ \t]+|-s[ \t]+)*[a-z][\w*-]*)")


@dataclass(frozen=True)
class Figure:
    """A number a page quotes, as written (``1.45``, ``4.6k``), and its unit."""

    text: str
    unit: str

    def __str__(self) -> str:
        return self.text if self.unit == "k" else f"{self.text} {self.unit}"

    @property
    def measured_only(self) -> bool:
        """A rate, a ratio with decimals (``1.45x``; ``2x capacity`` may be a setting) or
        a number in thousands: written only of a measurement."""
        if self.unit == "x":
            return "." in self.text
        return self.unit in MEASURED_ONLY


def documentation_pages() -> list[Path]:
    """The pages the checks cover: the top README, docs/ and every pattern's README."""
    return [
        REPO_ROOT / "README.md",
        *sorted((REPO_ROOT / "docs").glob("*.md")),
        *sorted((REPO_ROOT / "patterns").glob("*/README.md")),
    ]


def blocks(markdown: str) -> list[str]:
    """A page's paragraphs, list items and table rows, fenced code left out."""
    found: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        starts_item = line.lstrip().startswith(("|", "- ", "* ")) or re.match(r"\s*\d+\. ", line)
        if not line.strip() or starts_item:
            if current:
                found.append("\n".join(current))
            current = []
        if line.strip():
            current.append(line)
    if current:
        found.append("\n".join(current))
    return found


def quoted_figures(block: str) -> list[Figure]:
    """The figures a block quotes (inline code and link targets left out)."""
    text = _LINK.sub("]", _INLINE_CODE.sub("", block))
    return [
        Figure(m["number"] + ("k" if m["k"] else ""), m["unit"] or "k")
        for m in _FIGURE.finditer(text)
    ]


def linked_reports(block: str, page: Path, reports_dir: Path = REPORTS) -> list[Path]:
    """The reports under ``reports_dir`` a block links, resolved from its page."""
    targets = (page.parent / m["target"] for m in _LINK.finditer(block))
    resolved = (t.resolve() for t in targets)
    return [t for t in resolved if t.parent == reports_dir.resolve() and t.suffix == ".md"]


def _decimals(number: str) -> int:
    return len(number.split(".")[1]) if "." in number else 0


def figure_in_report(figure: Figure, report_text: str) -> bool:
    """Whether a report holds the figure, as written or rounded to the page's decimals."""
    number = figure.text.removesuffix("k").replace(",", "")
    scale = 1000 if figure.text.endswith("k") else 1
    decimals = _decimals(number)
    wanted = round(float(number), decimals)
    for token in _REPORT_NUMBER.findall(report_text):
        value = float(token.replace(",", "")) / scale
        if round(value, decimals) == wanted:
            return True
    return False


def figure_problems(page: Path, reports_dir: Path = REPORTS) -> list[str]:
    """What of ``page`` is not in its reports: a quoted figure, a linked report; or a
    measured figure (a rate, a ratio) in a block that links no report at all."""
    problems: list[str] = []
    for block in blocks(page.read_text()):
        reports = linked_reports(block, page, reports_dir)
        if not reports:
            problems += [
                f"{page.name}: {f} links no report under loadtests/reports/"
                for f in quoted_figures(block)
                if f.measured_only
            ]
        missing = [r for r in reports if not r.is_file()]
        problems += [f"{page.name}: links {r.name}, which does not exist" for r in missing]
        texts = [r.read_text() for r in reports if r.is_file()]
        if not texts:
            continue
        figures = quoted_figures(block)
        names = ", ".join(r.name for r in reports)
        dates = set(_DATE.findall(_INLINE_CODE.sub("", block)))
        measured = [f for f in figures if f.measured_only or "." in f.text]
        if measured and not any(date in text for date in dates for text in texts):
            problems.append(f"{page.name}: figures quoted from {names} without that run's date")
        for figure in figures:
            if not any(figure_in_report(figure, text) for text in texts):
                problems.append(f"{page.name}: {figure} is not in {names}")
    return problems


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped,
    spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", prose_of(markdown), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def prose_of(markdown: str) -> str:
    """A page without its fenced code blocks."""
    return re.sub(r"^```[^\n]*\n.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)


def dead_links(page: Path) -> list[str]:
    """The page's relative links whose file, or whose heading anchor, does not exist."""
    dead: list[str] = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose_of(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text())
        ):
            dead.append(target)
    return dead


def code_of(markdown: str) -> str:
    """A page's code: its fenced blocks and inline code spans, one per line."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    prose = prose_of(markdown)
    return "\n".join([*fenced, *(span.strip("`") for span in _INLINE_CODE.findall(prose))])


def make_targets_named(markdown: str) -> set[str]:
    """The targets of every ``make ...`` command in a page's code (options, VAR=x skipped)."""
    return {m["words"].split()[-1] for m in _MAKE_COMMAND.finditer(code_of(markdown))}


def unknown_targets(named: set[str], targets: set[str]) -> set[str]:
    """The names no target answers to; ``canary-*`` stands for any target it matches."""
    return {name for name in named if not fnmatch.filter(targets, name)}


def makefile_targets(makefile: Path = REPO_ROOT / "Makefile") -> set[str]:
    """The targets the Makefile (and the files it includes beside it) defines."""
    texts = [makefile.read_text()]
    for include in re.findall(r"^-?include\s+(\S+)", texts[0], flags=re.MULTILINE):
        texts += [p.read_text() for p in makefile.parent.glob(include)]
    return {
        target
        for text in texts
        for line in re.findall(r"^([\w.%/ -]+?):(?!=)", text, flags=re.MULTILINE)
        for target in line.split()
    }
