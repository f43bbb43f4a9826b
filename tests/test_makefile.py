"""The Makefile's guards and help, without Docker."""

import subprocess

from conftest import REPO_ROOT


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
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


def test_an_unknown_bench_section_is_refused_before_anything_starts() -> None:
    result = make("bench", "BENCH_ONLY=web-single,nope")
    assert result.returncode != 0
    assert "Unknown section 'nope' in BENCH_ONLY. Choose from: web-single, sync," in result.stderr
