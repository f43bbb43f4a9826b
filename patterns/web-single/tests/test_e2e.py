"""web-single end to end: the real stack from docker compose, talked to over HTTP."""

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_keys_e2e import (
    assert_guarded,
    assert_no_key_in_logs,
    assert_open_without_a_key,
    keys_on,
)
from tests.bad_input import GOOD_ROW, BadInput, assert_refused_by_the_stack, bad_inputs
from tests.compose_stack import REPO_ROOT, ComposeStack
from tests.docs_pages import docs_asset_problems
from tests.metrics_text import MetricsChange, sample_total
from tests.pattern_e2e import (
    assert_refused_as_the_contract_says,
    flood,
    test_smoke_load,  # noqa: F401 (run here)
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    with ComposeStack("web-single", MAX_INSTANCES="100") as stack:
        yield stack


def test_only_the_api_is_running_and_it_is_healthy_as_non_root(stack: ComposeStack) -> None:
    running = stack.compose("ps", "--format", "{{.Service}} {{.Health}}").split("\n")
    assert [line for line in running if line] == ["api healthy"]
    assert stack.compose("exec", "-T", "api", "id", "-u").strip() == "10001"
    published = stack.compose("port", "api", "8080").strip()
    assert published == f"127.0.0.1:{stack.port}"


def test_predictions_match_the_models_known_answers(stack: ComposeStack) -> None:
    examples = stack.get("/model").json()["examples"]
    answer = stack.post("/predict", json={"instances": [e["input"] for e in examples]})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["model_name"], body["model_version"]) == ("iris", "1")
    assert [p["label"] for p in body["predictions"]] == [e["label"] for e in examples]
    assert [p["label"] for p in body["predictions"]] == [e["true_label"] for e in examples]
    for prediction, example in zip(body["predictions"], examples, strict=True):
        assert list(prediction["probabilities"].values()) == pytest.approx(
            example["probabilities"], abs=1e-4
        )


@pytest.mark.parametrize("case", bad_inputs(max_instances=100), ids=str)
def test_bad_input_gets_a_clear_error(stack: ComposeStack, case: BadInput) -> None:
    assert_refused_by_the_stack(stack, "/predict", case)
    assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_oversized_body_gets_413_and_the_service_keeps_serving(stack: ComposeStack) -> None:
    big = b'{"instances": [' + b"[5.1, 3.5, 1.4, 0.2]," * 60_000 + b"[5.1, 3.5, 1.4, 0.2]]}"
    assert stack.post("/predict", content=big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies as it streams
        yield big[:700_000]
        yield big[700_000:]

    streamed = stack.post("/predict", content=chunks())
    assert streamed.status_code == 413
    assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_readiness_metrics_and_request_id_in_the_logs(stack: ComposeStack) -> None:
    assert stack.get("/health/live").json() == {"status": "alive"}
    assert stack.get("/health/ready").json() == {"status": "ready"}
    change = MetricsChange(lambda: stack.get("/metrics").text)
    stack.post("/predict", json={"instances": [GOOD_ROW]}, headers={"X-Request-ID": "e2e-trace-1"})
    assert stack.post("/predict", json={"instances": [[1, 2]]}).status_code == 422
    metrics = stack.get("/metrics").text
    sha256 = stack.get("/model").json()["sha256"]
    assert sample_total(metrics, "mlsp_model_info", model="iris", version="1", sha256=sha256) == 1
    predict = {"method": "POST", "route": "/predict"}
    assert change.increase("mlsp_http_requests_total", **predict, status="200") == 1
    assert change.increase("mlsp_http_requests_total", **predict, status="422") == 1
    assert change.increase("mlsp_stage_duration_seconds_count", stage="inference") == 1
    assert stack.traced("api", "e2e-trace-1") == ["POST /predict 200"]


def test_the_image_names_its_commit_in_the_build_info(stack: ComposeStack) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    metrics = stack.get("/metrics").text
    assert sample_total(metrics, "mlsp_build_info", git_sha=head or "unknown") == 1


def test_with_keys_and_cors_on_predict_needs_a_key_and_no_log_shows_one(
    stack: ComposeStack,
) -> None:
    with keys_on(stack, "api"):
        answer = assert_guarded(stack, "POST", "/predict", json={"instances": [GOOD_ROW]})
        assert answer.json()["predictions"][0]["label"] == "setosa"
        assert stack.get("/model").status_code == 401
        assert_open_without_a_key(stack)
        assert_no_key_in_logs(stack)
    assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_docs_are_served(stack: ComposeStack) -> None:
    assert stack.get("/docs").status_code == 200
    assert "/predict" in stack.get("/openapi.json").json()["paths"]


def test_a_model_that_does_not_match_its_metadata_is_refused(stack: ComposeStack) -> None:
    """The api checks the model at start: a tampered file keeps it from starting."""
    tamper = "printf '\\0' >> /models/iris/1/model.onnx"
    stack.compose(
        "run", "--rm", "--no-deps", "--entrypoint", "sh", "model-export", "-c", tamper,
    )  # fmt: skip
    try:
        stack.compose("restart", "api")
        refusal = stack.wait_for_log("api", "refusing to start")
        assert "sha256" in refusal["msg"]
        assert "metadata says" in refusal["msg"]
        assert refusal["level"] == "CRITICAL"
        with pytest.raises(httpx.TransportError):
            stack.http.get("/health/ready", timeout=2)
    finally:
        stack.compose("run", "--rm", "--no-deps", "model-export")  # export again
        stack.compose("restart", "api")
        stack.wait_ready()
    assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def assert_shed_as_the_contract_says(
    stack: ComposeStack, predicts: list[httpx.Response], probes: list[httpx.Response]
) -> None:
    """Refused as the contract says (:func:`assert_refused_as_the_contract_says`), and
    every 503 counted as shed."""
    assert_refused_as_the_contract_says(predicts, probes)
    shed_total = sum(a.status_code == 503 for a in predicts)
    assert f"mlsp_http_requests_shed_total {float(shed_total)}" in stack.get("/metrics").text


def test_past_the_in_flight_bound_the_api_sheds_with_503_and_serves_right_after(
    stack: ComposeStack,
) -> None:
    with stack.overridden(MAX_REQUESTS_IN_FLIGHT="2", OVERLOAD_DELAY_TARGET_MS="0"):
        stack.compose("up", "-d", "--wait", "api")
    try:
        predicts, probes = asyncio.run(flood(stack))
        assert_shed_as_the_contract_says(stack, predicts, probes)
        # Right after, one request at a time is never over the bound.
        for _ in range(20):
            assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200
        assert "mlsp_http_requests_in_flight 0.0" in stack.get("/metrics").text
    finally:
        stack.compose("up", "-d", "--wait", "api")  # the stack's own bound again


FLOODS_BEFORE_GIVING_UP = 15


async def flood_until_shed(
    stack: ComposeStack,
) -> tuple[list[httpx.Response], list[httpx.Response]]:
    """Floods (:func:`flood`) one after the other until one gets a 503; all their answers."""
    predicts: list[httpx.Response] = []
    probes: list[httpx.Response] = []
    for _ in range(FLOODS_BEFORE_GIVING_UP):
        more_predicts, more_probes = await flood(stack)
        predicts += more_predicts
        probes += more_probes
        if any(answer.status_code == 503 for answer in more_predicts):
            break
    return predicts, probes


def test_past_the_delay_target_the_server_itself_sheds_with_the_same_503(
    stack: ComposeStack,
) -> None:
    """A 1 ms target over a 1 ms interval: a flood's loop turns last longer, so uvicorn's
    protocol refuses requests before the app sees them (shared/kit/shedding_protocol.py),
    with the same answer as the app's.

    Whether one flood sheds depends on how fast the machine is: the loop must lag at two
    probes in a row while requests arrive (0 to 4 of 400 were shed on a quiet machine). So
    the floods go on until one sheds, up to ``FLOODS_BEFORE_GIVING_UP``; every answer of
    every flood is checked."""
    with stack.overridden(
        MAX_REQUESTS_IN_FLIGHT="0", OVERLOAD_DELAY_TARGET_MS="1", OVERLOAD_DELAY_INTERVAL_MS="1"
    ):
        stack.compose("up", "-d", "--wait", "api")
    try:
        predicts, probes = asyncio.run(flood_until_shed(stack))
        assert_shed_as_the_contract_says(stack, predicts, probes)
    finally:
        stack.compose("up", "-d", "--wait", "api")
    assert stack.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_docs_and_their_assets_answer_from_the_container(stack: ComposeStack) -> None:
    assert docs_asset_problems(stack.get) == []


# The pattern's README, and the top one (in a starter, the same file).
@pytest.mark.parametrize("readme", [Path(__file__).parents[1], REPO_ROOT], ids=["pattern", "top"])
def test_readme_examples_answer_as_quoted(stack: ComposeStack, readme: Path) -> None:
    assert stack.readme_example_problems(readme / "README.md") == []
