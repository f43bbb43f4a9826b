"""The pages against what they cite: figures in their reports, make targets in the
Makefile, pattern READMEs short, in one template, with examples their e2e test runs."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.doc_checks import (
    REPO_ROOT,
    blocks,
    dead_links,
    documentation_pages,
    figure_problems,
    make_targets_named,
    makefile_targets,
    quoted_figures,
    unknown_targets,
)
from tests.readme_examples import (
    _argv,
    _captured_fields,
    _curl_request,
    marked_examples,
    readme_example_problems,
    shape,
)

PAGES = documentation_pages()
PATTERN_READMES = sorted((REPO_ROOT / "patterns").glob("*/README.md"))
# The template every pattern README follows, after its diagram, in this order.
TEMPLATE = ["## When to use it", "## Run", "## Talk to it", "## Settings", "## Test"]
MAX_LINES = 150


def _id(page: Path) -> str:
    return str(page.relative_to(REPO_ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_figure_a_page_quotes_is_in_the_report_it_links(page: Path) -> None:
    assert figure_problems(page) == []


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_link_of_a_page_reaches_its_file_and_heading(page: Path) -> None:
    assert dead_links(page) == []


def test_a_dead_link_or_anchor_is_caught(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## When to use it\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[a](other.md#when-to-use-it) [b](other.md#settings) [c](gone.md) [d](https://x/y)\n"
    )
    assert dead_links(page) == ["other.md#settings", "gone.md"]


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_make_target_a_page_names_is_in_the_makefile(page: Path) -> None:
    assert unknown_targets(make_targets_named(page.read_text()), makefile_targets()) == set()


@pytest.mark.parametrize("page", [REPO_ROOT / "README.md", *PATTERN_READMES], ids=_id)
def test_a_readme_is_short(page: Path) -> None:
    assert len(page.read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("readme", PATTERN_READMES, ids=_id)
def test_a_pattern_readme_follows_the_template(readme: Path) -> None:
    text = readme.read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == TEMPLATE
    assert "```mermaid" in text.split("\n## ")[0], "the diagram comes first"


@pytest.mark.parametrize("readme", PATTERN_READMES, ids=_id)
def test_a_pattern_readme_has_examples_its_e2e_test_runs(readme: Path) -> None:
    assert marked_examples(readme.read_text())
    e2e = (readme.parent / "tests" / "test_e2e.py").read_text()
    # Its own test, or the shared one of tests/pattern_e2e.py imported to run there.
    assert "readme_example_problems(" in e2e or "import test_readme_examples" in e2e


def test_a_stale_copy_of_a_figure_is_caught(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "comparison.md").write_text(
        "Run: 2026-12-03 16:20 UTC\n\n| web-single | 7421.3 | 2 | 3 |\n"
    )
    page = tmp_path / "README.md"
    link = "[comparison](reports/comparison.md)"
    page.write_text(f"web-single answers 7421 req/s, about 7.4k ({link}, 2026-12-03).\n")
    assert figure_problems(page, reports) == []
    page.write_text(f"web-single answers 2127 req/s, p50 2 ms ({link}, 2026-12-03).\n")
    assert figure_problems(page, reports) == ["README.md: 2127 req/s is not in comparison.md"]
    page.write_text(f"web-single answers 7421 req/s ({link}, 2026-11-26: another run's date).\n")
    assert figure_problems(page, reports) == [
        "README.md: figures quoted from comparison.md without that run's date"
    ]
    page.write_text(f"Every share within 20% of an even split ({link}).\n")
    assert figure_problems(page, reports) == []  # a bound, not a measurement: no date needed


def test_a_rate_that_links_no_report_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("web-single answers 2127 req/s; hop cost 1.45x.\n\nA 2x load, 500 ms.\n")
    assert figure_problems(page, tmp_path) == [
        "README.md: 2127 req/s links no report under loadtests/reports/",
        "README.md: 1.45 x links no report under loadtests/reports/",
    ]


def test_a_link_to_a_missing_report_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("See [the report](reports/gone.md).\n")
    assert figure_problems(page, tmp_path / "reports") == [
        "README.md: links gone.md, which does not exist"
    ]


def test_figures_in_code_are_settings_not_quotes() -> None:
    figures = quoted_figures("`make load DURATION=30s RATE=400` gives 1,215.1 req/s and 4.6k")
    assert [str(f) for f in figures] == ["1,215.1 req/s", "4.6k"]


def test_blocks_are_paragraphs_list_items_and_table_rows() -> None:
    text = "one\nparagraph\n\n- item one\n- item two\n\n| a | b |\n| 1 | 2 |\n```\n9 ms\n```\n"
    assert blocks(text) == ["one\nparagraph", "- item one", "- item two", "| a | b |", "| 1 | 2 |"]


def test_make_targets_are_read_from_code_only() -> None:
    text = "To make sure, run `make down WIPE=1`.\n\n```\nmake -s load PATTERN=sync USERS=4\n```\n"
    assert make_targets_named(text) == {"down", "load"}


def test_a_target_the_makefile_lacks_is_caught() -> None:
    assert "up" in makefile_targets()
    assert "k8s-deploy-everything" not in makefile_targets()
    named = make_targets_named("`make k8s-deploy-everything`, `make canary-*`, `make nope-*`")
    assert unknown_targets(named, makefile_targets()) == {"k8s-deploy-everything", "nope-*"}


def test_marked_examples_are_commands_and_their_quoted_answers() -> None:
    text = (
        "```console\n$ curl -s http://127.0.0.1:8000/skipped\n```\n"
        "```console e2e\n"
        "$ curl -s http://127.0.0.1:8000/predict \\\n"
        "    -d '{\"instances\": [[1, 2]]}'\n"
        '{"job_id": "abc",\n "status": "queued"}\n'
        "$ curl -s http://127.0.0.1:8000/jobs/$JOB_ID\n"
        '{"status": "finished"}\n'
        "```\n"
    )
    examples = marked_examples(text)
    assert [e.command for e in examples] == [
        "curl -s http://127.0.0.1:8000/predict -d '{\"instances\": [[1, 2]]}'",
        "curl -s http://127.0.0.1:8000/jobs/$JOB_ID",
    ]
    assert examples[0].quoted_answer == '{"job_id": "abc",\n "status": "queued"}'


def test_an_answers_shape_keeps_keys_and_types_not_values() -> None:
    quoted = {"predictions": [{"label": "setosa", "p": 0.98}], "version": "1", "ok": True}
    same = {"predictions": [{"label": "virginica", "p": 1}] * 3, "version": "2", "ok": False}
    assert shape(same) == shape(quoted)
    assert shape({**same, "extra": 1}) != shape(quoted)
    assert shape({**same, "version": 2}) != shape(quoted)
    assert shape({**same, "predictions": [{"label": "x"}]}) != shape(quoted)


def test_a_later_command_names_fields_of_an_earlier_answer() -> None:
    fields = _captured_fields({"job_id": "j-1", "ids": [7, 8], "done": True, "n": 3})
    assert fields == {"JOB_ID": "j-1", "IDS_0": "7", "N": "3"}
    command = "curl -s http://127.0.0.1:8000/jobs/$JOB_ID?row=$IDS_0"
    assert _argv(command, "http://127.0.0.1:4321", fields) == [
        "curl",
        "-s",
        "http://127.0.0.1:4321/jobs/j-1?row=7",
    ]
    with pytest.raises(ValueError, match="MISSING"):
        _argv("curl http://127.0.0.1:8000/$MISSING", "http://x", fields)


class _JobServer(BaseHTTPRequestHandler):
    """Answers a submit with a job id, and the job as queued on the first poll only."""

    polls = 0

    def do_POST(self) -> None:
        self._answer({"job_id": "j-7", "status": "queued"})

    def do_GET(self) -> None:
        _JobServer.polls += 1
        done = _JobServer.polls > 1 and self.path == "/jobs/j-7"
        body = (
            {"status": "finished", "result": {"label": "setosa"}} if done else {"status": "queued"}
        )
        self._answer(body)

    def _answer(self, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads answers, not access lines."""


def test_the_examples_run_with_curl_wait_for_the_quoted_shape_and_report_a_different_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "Makefile").write_text("up:\n")
    readme = tmp_path / "README.md"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JobServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_port}"
    try:
        readme.write_text(
            "```console e2e\n"
            "$ curl -s http://127.0.0.1:8000/predict -d '{}'\n"
            '{"job_id": "abc", "status": "queued"}\n'
            "$ curl -s http://127.0.0.1:8000/jobs/$JOB_ID\n"
            '{"status": "finished", "result": {"label": "virginica"}}\n'
            "```\n"
        )
        assert readme_example_problems(readme, base_url, timeout_s=5) == []
        assert _JobServer.polls == 2  # the first poll saw "queued" and was repeated
        readme.write_text(
            '```console e2e\n$ curl -s http://127.0.0.1:8000/predict\n{"job_id": 1}\n```\n'
        )
        [problem] = readme_example_problems(readme, base_url, timeout_s=0)
        assert "quoted shape: {'job_id': 'number'}" in problem
    finally:
        server.shutdown()
        server.server_close()


def test_a_readme_without_marked_examples_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("up:\n")
    (tmp_path / "README.md").write_text("```console\n$ curl -s http://127.0.0.1:8000/\n{}\n```\n")
    with pytest.raises(ValueError, match="no ```console e2e block"):
        readme_example_problems(tmp_path / "README.md", "http://127.0.0.1:1")


def test_a_command_becomes_the_request_curl_would_send(tmp_path: Path) -> None:
    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\nraw")
    (tmp_path / "rows.json").write_bytes(b'{"instances":\n [[1, 2]]}\n')
    form = _curl_request(["curl", "-s", "http://h/predict", "-d", '{"a": 1}'], tmp_path)
    assert (form.method, form.headers["content-type"], form.content) == (
        "POST",
        "application/x-www-form-urlencoded",
        b'{"a": 1}',
    )
    typed = _curl_request(
        ["curl", "http://h/p", "-H", "Content-Type: image/png", "--data-binary", "@digit.png"],
        tmp_path,
    )
    assert (typed.headers["content-type"], typed.content) == ("image/png", b"\x89PNG\r\nraw")
    stripped = _curl_request(["curl", "http://h/p", "-d", "@rows.json"], tmp_path)
    assert stripped.content == b'{"instances": [[1, 2]]}'
    upload = _curl_request(["curl", "http://h/p", "-F", "file=@digit.png"], tmp_path)
    upload.read()
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'filename="digit.png"' in upload.content
    assert b"Content-Type: image/png" in upload.content
    assert _curl_request(["curl", "-s", "-X", "POST", "http://h/runs"], tmp_path).method == "POST"
    assert _curl_request(["curl", "http://h/jobs/7"], tmp_path).method == "GET"
    with pytest.raises(ValueError, match="does not read curl's --insecure"):
        _curl_request(["curl", "--insecure", "http://h/"], tmp_path)
