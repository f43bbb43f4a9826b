"""compose/scale.py, the replicas knob of `make up`: values checked before anything runs,
and a compose CLI made sure of (no engine started while one answers) before it is asked for
the pattern's services."""

from pathlib import Path

import pytest

from compose import scale


@pytest.fixture
def ensure_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ensure-docker.sh that writes a line each time it runs."""
    log = tmp_path / "ensured"
    script = tmp_path / "ensure-docker.sh"
    script.write_text(f"#!/bin/sh\necho ensured >> {log}\necho apt-output\n")
    script.chmod(0o755)
    monkeypatch.setattr(scale, "ENSURE_DOCKER", script)
    return log


@pytest.fixture
def no_compose_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """No compose CLI answers: one absent, one that fails."""
    monkeypatch.setattr(scale, "compose_command", lambda: ["false"])


def test_a_compose_cli_that_answers_needs_no_engine(
    ensure_log: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(scale, "compose_command", lambda: ["true"])
    monkeypatch.setattr(
        scale,
        "compose_config",
        lambda pattern: {"services": {"pred": {"image": "mlsp/x", "restart": "always"}}},
    )
    assert scale.main(["sync", "--replicas", "2"]) == 0
    assert capfd.readouterr().out == "--scale pred=2\n"
    assert not ensure_log.exists()


def test_a_missing_docker_cli_is_made_sure_of(
    ensure_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scale, "compose_command", lambda: ["/nonexistent/docker", "compose"])
    monkeypatch.setattr(scale, "compose_config", lambda pattern: {"services": {}})
    assert scale.main(["sync", "--replicas", "2"]) == 0
    assert ensure_log.read_text() == "ensured\n"


@pytest.mark.usefixtures("no_compose_cli")
def test_the_engine_is_made_sure_of_before_compose_is_read(
    ensure_log: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def config_after_the_engine(pattern: str) -> dict[str, object]:
        assert ensure_log.read_text() == "ensured\n", "compose was read before the engine"
        return {"services": {"predictor": {"image": "mlsp/x", "restart": "always"}}}

    monkeypatch.setattr(scale, "compose_config", config_after_the_engine)
    assert scale.main(["sync", "--replicas", "2"]) == 0
    out = capfd.readouterr()
    assert out.out == "--scale predictor=2\n"  # only the flags: the install's output is not
    assert "apt-output" in out.err


@pytest.mark.parametrize(
    "argv", [["--replicas", "0"], ["--replicas", "abc"], ["--scale", "predictor"]]
)
def test_a_bad_value_is_refused_before_the_engine_is_touched(
    ensure_log: Path, argv: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    assert scale.main(["sync", *argv]) == 2
    assert not ensure_log.exists()
    assert len(capfd.readouterr().err.splitlines()) == 1


def test_no_knob_needs_no_engine(ensure_log: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert scale.main(["sync"]) == 0
    assert not ensure_log.exists()
    assert capfd.readouterr().out == "\n"


@pytest.mark.usefixtures("no_compose_cli")
def test_no_engine_is_one_more_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    failing = tmp_path / "ensure-docker.sh"
    failing.write_text("#!/bin/sh\necho 'ensure-docker: no Docker engine answers.' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setattr(scale, "ENSURE_DOCKER", failing)
    assert scale.main(["sync", "--replicas", "2"]) == 2
    err = capfd.readouterr().err.splitlines()
    assert err == [
        "ensure-docker: no Docker engine answers.",
        "no Docker engine or compose plugin (see the lines above)",
    ]
