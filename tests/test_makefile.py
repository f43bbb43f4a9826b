"""The Makefile's guards and help, without Docker."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

#: The pinned compose CLI ``make test`` installs: reading a compose file needs no engine, so
#: no check here may start (or install) one.
PINNED_COMPOSE = Path(sys.executable).parent / "docker-compose"


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"DOCKER_COMPOSE": str(PINNED_COMPOSE)},
    )


def test_help_lists_the_targets_and_patterns() -> None:
    result = make("help")
    assert result.returncode == 0
    for target in ("up", "down", "load", "compare", "bench", "starter", "test", "e2e"):
        assert f"make {target} " in result.stdout
    assert "web-single" in result.stdout


def test_unknown_pattern_is_refused_with_the_list() -> None:
    for target in ("up", "down", "load", "starter"):
        result = make(target, "PATTERN=nope", "DEST=/tmp/x")
        assert result.returncode != 0
        assert "Unknown PATTERN 'nope'. Choose one of: " in result.stderr
        assert "web-single" in result.stderr
    compare = make("compare", "PATTERNS=web-single nope")
    assert compare.returncode != 0
    assert "Unknown pattern 'nope' in PATTERNS" in compare.stderr


def test_load_passes_repeat_share_to_the_harness_only_when_set() -> None:
    dry = make("-n", "load", "PATTERN=prediction-cache", "REPEAT_SHARE=0.9")
    assert dry.returncode == 0, dry.stderr
    assert "-e PATTERN=prediction-cache -e REPEAT_SHARE=0.9 " in dry.stdout
    assert "REPEAT_SHARE" not in make("-n", "load", "PATTERN=prediction-cache").stdout
    zipf = make("-n", "load", "PATTERN=data-cache", "ZIPF_S=1.2")
    assert zipf.returncode == 0, zipf.stderr
    assert "-e PATTERN=data-cache  -e ZIPF_S=1.2 " in zipf.stdout
    assert "ZIPF_S" not in make("-n", "load", "PATTERN=data-cache").stdout


def test_batch_commands_work_on_the_batch_stack_whatever_pattern_says() -> None:
    dry = make("-n", "batch-run", "PATTERN=web-single")
    assert dry.returncode == 0, dry.stderr
    assert "patterns/web-single/" not in dry.stdout
    assert "compose.sh -f patterns/batch/compose.yaml ps --services --status running" in dry.stdout
    assert "|| ./compose/compose.sh -f patterns/batch/compose.yaml up --build --wait" in dry.stdout
    assert "compose.sh -f patterns/batch/compose.yaml run --rm ctl run --wait" in dry.stdout


def test_canary_commands_change_the_weights_in_the_canary_api_whatever_pattern_says() -> None:
    admin = "./compose/compose.sh -f patterns/canary/compose.yaml exec -T api python -m admin"
    for target, command in (
        ("canary-promote", "promote"),
        ("canary-rollback", "rollback"),
        ("canary-weights", "set '70' '30'"),
    ):
        dry = make("-n", target, "PATTERN=web-single", "PRIMARY=70", "CANARY=30")
        assert dry.returncode == 0, dry.stderr
        assert f"{admin} {command}" in dry.stdout
    half = make("canary-weights", "PRIMARY=70")
    assert half.returncode == 2
    assert "Say both: make canary-weights PRIMARY=90 CANARY=10" in half.stderr


def test_an_unknown_bench_section_is_refused_before_anything_starts() -> None:
    result = make("bench", "BENCH_ONLY=web-single,nope")
    assert result.returncode != 0
    assert "Unknown section 'nope' in BENCH_ONLY. Choose from: web-single, sync," in result.stderr


def test_replicas_and_scale_become_compose_scale_flags() -> None:
    dry = make("-n", "up", "PATTERN=sync", "REPLICAS=2", "SCALE=predictor=3")
    assert dry.returncode == 0, dry.stderr
    assert "compose.scale sync --replicas '2' --scale 'predictor=3'" in dry.stdout
    assert "up --build --wait --remove-orphans $scale" in dry.stdout


def test_bad_replica_values_get_one_line_and_nothing_starts() -> None:
    for args, message in (
        (["REPLICAS=0"], "REPLICAS='0': give a whole number of replicas, 1 or more"),
        (["REPLICAS=abc"], "REPLICAS='abc': give a whole number of replicas, 1 or more"),
        (["SCALE=predictor"], "SCALE: 'predictor' is not service=N"),
        (["SCALE=nope=2"], "SCALE: sync has no scalable service nope; choose from: predictor"),
    ):
        # Run for real: the check comes before compose, so nothing may start.
        result = make("up", "PATTERN=sync", *args)
        assert result.returncode != 0
        # make's own "make: ***" (or "make[1]: ***" under another make) line is not ours.
        lines = [line for line in result.stderr.splitlines() if "*** [" not in line]
        assert len(lines) == 1, result.stderr
        assert message in lines[0]
        assert "is up in" not in result.stdout


def test_edge_lays_haproxy_over_the_pattern_and_load_goes_through_it() -> None:
    up = make("-n", "up", "PATTERN=sync", "EDGE=1")
    assert up.returncode == 0, up.stderr
    assert "compose.sh -f patterns/sync/compose.yaml -f compose/edge.yaml  up --build" in up.stdout
    assert "--host http://edge:8080 " in make("-n", "load", "PATTERN=sync", "EDGE=1").stdout
    for off in ("EDGE=0", "EDGE="):
        dry = make("-n", "up", "PATTERN=sync", off)
        assert dry.returncode == 0, dry.stderr
        assert "edge.yaml" not in dry.stdout
    assert "--host http://api:8080 " in make("-n", "load", "PATTERN=sync").stdout


def test_a_bad_edge_value_gets_one_line_and_nothing_starts() -> None:
    for target in ("up", "down", "load"):
        result = make(target, "PATTERN=web-single", "EDGE=yes")  # for real: nothing may start
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if "*** [" not in line]
        assert lines == ["EDGE='yes': give 1 (HAProxy in front of the api) or 0/nothing (none)"]
        assert result.stdout == ""


def test_overload_passes_the_edge_settings_to_the_bench() -> None:
    dry = make("-n", "overload", "PATTERN=sync", "SHEDDING=count,edge", "EDGE_SETTINGS=8:8,32:0")
    assert dry.returncode == 0, dry.stderr
    assert "--shedding count,edge" in dry.stdout
    assert "--edge 8:8,32:0" in dry.stdout


def test_chaos_runs_one_replica_count_when_asked_and_refuses_others() -> None:
    assert (
        "-m tests.chaos sync --replicas 2"
        in make("-n", "chaos", "PATTERNS=sync", "REPLICAS=2").stdout
    )
    assert "--replicas" not in make("-n", "chaos", "PATTERNS=sync").stdout
    refused = make("chaos", "PATTERNS=sync", "REPLICAS=5")  # for real: refused before anything
    assert refused.returncode != 0
    assert "make chaos: REPLICAS='5': give 1 or 2 (or nothing: both)" in refused.stderr


def test_test_and_e2e_run_one_patterns_tests_when_pattern_is_given() -> None:
    everything = {k: v for k, v in os.environ.items() if k != "PATTERN"}
    for target, marker in (("test", '-m "not e2e"'), ("e2e", "-m e2e -p no:randomly")):
        one = make("-n", target, "PATTERN=sync")
        assert one.returncode == 0, one.stderr
        assert f"pytest {marker} patterns/sync/tests\n" in one.stdout
        every = subprocess.run(
            ["make", "--no-print-directory", "-n", target],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
            env=everything,
        )
        assert every.returncode == 0, every.stderr
        assert f"pytest {marker} \n" in every.stdout  # no path: every test, as before
    linted = make("-n", "test", "PATTERN=sync").stdout
    assert "ruff check patterns/sync\n" in linted
    assert "ruff format --check patterns/sync\n" in linted


def test_test_and_e2e_refuse_an_unknown_pattern_and_run_nothing() -> None:
    for target in ("test", "e2e"):
        refused = make(target, "PATTERN=nope")
        assert refused.returncode == 2
        assert refused.stdout == ""
        (line,) = [text for text in refused.stderr.splitlines() if not text.startswith("make")]
        assert line.startswith("Unknown PATTERN 'nope': no tests run. Choose one of: async ")


def test_help_says_how_to_test_one_pattern() -> None:
    assert "make test|e2e PATTERN=x: only patterns/x/tests" in make("help").stdout
