"""prep-pred end to end, both variants: sample images in, digits out; bad images refused."""

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.compose_stack import ComposeStack
from tests.pattern_e2e import test_readme_examples, test_smoke_load  # noqa: F401 (run here)

pytestmark = pytest.mark.e2e

SAMPLES = sorted((Path(__file__).resolve().parents[1] / "samples").iterdir())
GOOD = SAMPLES[0]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module", params=["simple", "microservice"])
def stack(request: pytest.FixtureRequest) -> Iterator[ComposeStack]:
    with ComposeStack("prep-pred", VARIANT=request.param) as stack:
        stack.variant = request.param  # type: ignore[attr-defined]
        yield stack


def send(stack: ComposeStack, path: Path, multipart: bool = False):
    if multipart:
        return stack.post("/predict", files={"file": (path.name, path.read_bytes())})
    content_type = "image/png" if path.suffix == ".png" else "image/jpeg"
    return stack.post("/predict", content=path.read_bytes(), headers={"Content-Type": content_type})


def test_three_services_only_the_api_published(stack: ComposeStack) -> None:
    rows = stack.compose("ps", "--format", "{{.Service}} {{.Health}} {{.Ports}}").splitlines()
    by_service = {line.split()[0]: line for line in rows if line}
    assert set(by_service) == {"api", "prep", "pred"}
    assert all("healthy" in line for line in by_service.values())
    assert f"127.0.0.1:{stack.port}->8080/tcp" in by_service["api"]
    assert "->" not in by_service["prep"] + by_service["pred"]


def test_prep_and_pred_have_their_own_dependencies(stack: ComposeStack) -> None:
    def imports(service: str, module: str) -> bool:
        out = stack.compose(
            "exec", "-T", service, "python", "-c",
            f"import importlib.util as u; print(u.find_spec('{module}') is not None)",
        )  # fmt: skip
        return out.strip() == "True"

    assert imports("prep", "PIL")
    assert not imports("prep", "onnxruntime")
    assert imports("pred", "onnxruntime")
    assert not imports("pred", "PIL")


def test_the_sample_digits_are_recognised(stack: ComposeStack) -> None:
    right = 0
    for i, path in enumerate(SAMPLES):
        answer = send(stack, path, multipart=i % 2 == 1)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["variant"] == stack.variant  # type: ignore[attr-defined]
        right += body["predictions"][0]["label"] == path.stem.split("-")[1]
    assert right / len(SAMPLES) >= 0.8, f"{right} of {len(SAMPLES)} right"


def bad_inputs() -> list[tuple[str, dict, int]]:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    whole = png(Image.fromarray(noise))
    as_png = {"Content-Type": "image/png"}
    return [
        ("not an image", {"content": b"GIF89a? no, just text", "headers": as_png}, 422),
        ("truncated", {"content": whole[: len(whole) // 2], "headers": as_png}, 422),
        ("huge", {"content": png(Image.new("L", (6000, 6000), 255)), "headers": as_png}, 413),
        ("empty", {"content": b"", "headers": as_png}, 422),
        ("wrong content type", {"json": {"instances": [[0] * 64]}}, 415),
    ]


def test_bad_input_gets_clear_4xx_and_every_service_keeps_serving(stack: ComposeStack) -> None:
    for case, request_args, status in bad_inputs():
        answer = stack.post("/predict", **request_args)
        assert answer.status_code == status, f"{case}: {answer.text}"
        error = answer.json()["error"]
        assert error["message"], case
        assert error["request_id"] == answer.headers["x-request-id"]
        assert send(stack, GOOD).status_code == 200, f"not serving after {case}"
    restarts = stack.compose("ps", "--format", "{{.Service}} {{.Status}}")
    assert "Restarting" not in restarts
    assert "(healthy)" in restarts


def test_the_request_id_travels_through_every_hop(stack: ComposeStack) -> None:
    request_id = f"prep-pred-e2e-{stack.variant}"  # type: ignore[attr-defined]
    answer = stack.post(
        "/predict",
        content=GOOD.read_bytes(),
        headers={"Content-Type": "image/png", "X-Request-ID": request_id},
    )
    assert answer.status_code == 200
    assert stack.traced("api", request_id) == ["POST /predict 200"]
    assert stack.traced("prep", request_id) == ["ModelInfer OK"]
    assert stack.traced("pred", request_id) == ["ModelInfer OK"]
