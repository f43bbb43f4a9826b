"""prep-pred in-process: the api against real prep and predictor processes, both variants.

The prep process runs with onnxruntime made unimportable, as in its image.
"""

import asyncio
import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import REPO_ROOT, PredictorProcess, _free_port, grpc_process, running_predictor
from shared.mechanisms.digit_images import opened_to_digits
from shared.model.metadata import ModelError
from tests.api_fuzz import assert_no_server_errors
from tests.metrics_text import MetricsChange

PATTERN = Path(__file__).resolve().parents[1]
SAMPLES = sorted((PATTERN / "samples").iterdir())
BLOCK_ONNXRUNTIME = (
    "import sys; sys.modules['onnxruntime'] = None; "
    "from shared.kit.serve import run; run('main:app')"
)


def truth(path: Path) -> str:
    return path.stem.split("-")[1]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@contextmanager
def running_prep(model_repo: Path, **env: str) -> Iterator[tuple[str, str]]:
    """A prep process on free ports: (gRPC target, HTTP URL)."""
    http_port, grpc_port = _free_port(), _free_port()
    settings = {
        "PYTHONPATH": str(REPO_ROOT),
        "MODEL_DIR": str(model_repo),
        "HOST": "127.0.0.1",
        "PORT": str(http_port),
        "GRPC_PORT": str(grpc_port),
        "LOG_LEVEL": "WARNING",
        **env,
    }
    command = [sys.executable, "-c", BLOCK_ONNXRUNTIME]
    with grpc_process(command, settings, grpc_port, cwd=PATTERN / "prep"):
        yield f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"


@pytest.fixture(scope="module")
def pred(model_repo: Path) -> Iterator[PredictorProcess]:
    with running_predictor(model_repo, MODELS="digits") as predictor:
        yield predictor


@pytest.fixture(scope="module")
def chained_prep(model_repo: Path, pred: PredictorProcess) -> Iterator[tuple[str, str]]:
    with running_prep(model_repo, VARIANT="simple", PRED_URL=pred.grpc_target) as prep:
        yield prep


@pytest.fixture(scope="module")
def plain_prep(model_repo: Path) -> Iterator[tuple[str, str]]:
    with running_prep(model_repo, VARIANT="microservice", MAX_PIXELS="4000000") as prep:
        yield prep


@pytest.fixture(params=["simple", "microservice"])
def variant(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def client(
    variant: str,
    load_service: Callable[..., ModuleType],
    pred: PredictorProcess,
    chained_prep: tuple[str, str],
    plain_prep: tuple[str, str],
) -> Iterator[TestClient]:
    prep = chained_prep if variant == "simple" else plain_prep
    service = load_service(
        "prep-pred", "api", VARIANT=variant, PREP_URL=prep[0], PRED_URL=pred.grpc_target
    )
    with TestClient(service.app) as client:
        yield client


def test_the_sample_images_are_recognised(client: TestClient, variant: str) -> None:
    right = 0
    for path in SAMPLES:
        content_type = "image/png" if path.suffix == ".png" else "image/jpeg"
        answer = client.post(
            "/predict", content=path.read_bytes(), headers={"Content-Type": content_type}
        )
        assert answer.status_code == 200, answer.text
        right += answer.json()["predictions"][0]["label"] == truth(path)
    assert right / len(SAMPLES) >= 0.9
    assert client.get("/health/ready").json() == {"status": "ready"}


def test_the_answer_names_each_stage_and_who_ran_it(client: TestClient, variant: str) -> None:
    change = MetricsChange(lambda: client.get("/metrics").text)
    answer = client.post(
        "/predict", content=SAMPLES[0].read_bytes(), headers={"Content-Type": "image/png"}
    )
    body = answer.json()
    assert (body["model_name"], body["model_version"], body["variant"]) == ("digits", "1", variant)
    prediction = body["predictions"][0]
    assert set(prediction["probabilities"]) == {str(d) for d in range(10)}
    assert prediction["label"] == max(
        prediction["probabilities"], key=prediction["probabilities"].get
    )
    stages = [(s["stage"], s["service"]) for s in body["stages"]]
    if variant == "simple":
        assert stages == [("prep", "api"), ("preprocess", "prep"), ("pred", "prep")]
    else:
        assert stages == [("prep", "api"), ("preprocess", "prep"), ("pred", "api")]
    assert all(s["ms"] > 0 for s in body["stages"])
    assert change.increase("mlsp_outbound_duration_seconds_count", outcome="ok", peer="prep") == 1


def test_a_multipart_upload_works(client: TestClient) -> None:
    path = PATTERN / "samples" / "digit-3-0.png"
    answer = client.post("/predict", files={"file": (path.name, path.read_bytes(), "image/png")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["label"] == "3"


def bad_requests() -> list[tuple[str, dict, int, str, str]]:
    good = (PATTERN / "samples" / "digit-0-0.png").read_bytes()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    truncated = png(Image.fromarray(noise))
    return [
        ("not an image", {"content": b"hello", "headers": {"Content-Type": "image/png"}},
         422, "invalid_input", "not a PNG or JPEG image"),
        ("truncated", {"content": truncated[: len(truncated) // 2],
                       "headers": {"Content-Type": "image/png"}},
         422, "invalid_input", "truncated or corrupt"),
        ("empty body", {"content": b"", "headers": {"Content-Type": "image/png"}},
         422, "invalid_input", "the image is empty"),
        ("json", {"json": {"instances": [[0] * 64]}},
         415, "unsupported_media_type", "application/json is not an image"),
        ("no content type", {"content": good},
         415, "unsupported_media_type", "no content type is not an image"),
        ("form without a file", {"data": {"note": "x"}},
         415, "unsupported_media_type", "application/x-www-form-urlencoded is not an image"),
        ("multipart without a file", {"files": {"note": (None, b"x")}},
         422, "invalid_input", "the multipart body has no file"),
        ("multipart, empty file", {"files": {"file": ("digit.png", b"", "image/png")}},
         422, "invalid_input", "the image is empty"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", bad_requests(), ids=[case[0] for case in bad_requests()])
def test_bad_input_gets_a_clear_4xx_and_the_services_keep_serving(
    client: TestClient, case: tuple[str, dict, int, str, str]
) -> None:
    _, request_args, status, code, message = case
    answer = client.post("/predict", **request_args)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert message in error["message"]
    assert "Traceback" not in answer.text
    good = (PATTERN / "samples" / "digit-0-0.png").read_bytes()
    after = client.post("/predict", content=good, headers={"Content-Type": "image/png"})
    assert after.status_code == 200


def test_a_decompression_bomb_is_refused_with_413(client: TestClient, variant: str) -> None:
    big = png(Image.new("L", (6000, 6000), 255))  # 36 megapixels in ~40 kB
    answer = client.post("/predict", content=big, headers={"Content-Type": "image/png"})
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert "6000x6000 = 36000000 pixels; at most" in answer.json()["error"]["message"]


@pytest.mark.parametrize("variant", ["simple"])  # prep calls pred itself
def test_prep_records_its_preprocess_stage(
    client: TestClient, chained_prep: tuple[str, str]
) -> None:
    # Its own request first: in random order no other test may have sent one yet.
    sample = SAMPLES[0].read_bytes()
    assert client.post("/predict", content=sample, headers={"Content-Type": "image/png"}).is_success
    metrics = httpx.get(f"{chained_prep[1]}/metrics").text
    assert 'mlsp_stage_duration_seconds_count{stage="preprocess"}' in metrics
    assert 'mlsp_outbound_duration_seconds_count{outcome="ok",peer="pred"}' in metrics
    assert httpx.get(f"{chained_prep[1]}/health/ready").json() == {"status": "ready"}


def test_prep_down_is_503_and_not_ready(
    load_service: Callable[..., ModuleType], pred: PredictorProcess
) -> None:
    service = load_service(
        "prep-pred",
        "api",
        VARIANT="microservice",
        PREP_URL=f"127.0.0.1:{_free_port()}",
        PRED_URL=pred.grpc_target,
        REQUEST_TIMEOUT_S="0.5",
    )
    with TestClient(service.app) as client:
        answer = client.post(
            "/predict", content=SAMPLES[0].read_bytes(), headers={"Content-Type": "image/png"}
        )
        assert answer.status_code == 503
        assert answer.json()["error"]["message"] == "prep is unavailable; retry shortly"
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "prep at" in ready.json()["checks"]["prep"]


def large_photo() -> bytes:
    """The sample 3 as a 1600 x 1600 JPEG photo (2.56 megapixels)."""
    three = PATTERN / "samples" / "digit-3-0.png"
    photo = Image.open(three).resize((1600, 1600), Image.Resampling.NEAREST).convert("RGB")
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def test_a_large_photo_is_recognised(client: TestClient) -> None:
    answer = client.post("/predict", content=large_photo(), headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["label"] == "3"


async def test_a_large_photo_is_decoded_in_a_worker_thread_and_a_small_one_on_the_loop(
    load_service: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    prep = load_service("prep-pred", "prep", VARIANT="microservice", MAX_PIXELS="4000000")
    decoded_on_loop: list[bool] = []

    def recording(*args: object) -> np.ndarray:
        try:
            asyncio.get_running_loop()
            decoded_on_loop.append(True)
        except RuntimeError:  # no event loop in this thread: a worker thread
            decoded_on_loop.append(False)
        return opened_to_digits(*args)

    monkeypatch.setattr(prep, "opened_to_digits", recording)
    made = prep.Prep.from_settings(prep.settings)
    assert (await made.preprocess(large_photo())).shape == (1, 64)
    assert (await made.preprocess(SAMPLES[0].read_bytes())).shape == (1, 64)
    assert decoded_on_loop == [False, True]


def test_the_docs_describe_the_image_upload(client: TestClient) -> None:
    body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    assert set(body["content"]) == {"image/*", "multipart/form-data"}


def test_generated_requests_get_no_server_error(client: TestClient) -> None:
    assert_no_server_errors(client)


def test_the_simple_variant_without_a_predictor_refuses_to_start(
    load_service: Callable[..., ModuleType],
) -> None:
    prep = load_service("prep-pred", "prep", VARIANT="simple", PRED_URL="")
    with pytest.raises(ModelError, match="VARIANT=simple needs PRED_URL"), TestClient(prep.app):
        pass
