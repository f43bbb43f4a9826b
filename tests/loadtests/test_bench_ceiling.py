"""The transport ceiling of ``make bench`` answers what the bare endpoints answer."""

import re
from pathlib import Path

import httpx

from loadtests.bench.bare import BODY, raw_app, rsgi_app

NGINX_CONF = Path(__file__).resolve().parents[2] / "loadtests/bench/nginx/nginx.conf"


def test_nginx_answers_predict_with_the_bare_endpoints_body() -> None:
    predict = re.search(
        r"location = /predict \{.*?return 200 '([^']*)';", NGINX_CONF.read_text(), re.DOTALL
    )
    assert predict is not None, "nginx.conf has no fixed answer for /predict"
    assert predict.group(1).encode() == BODY


async def test_the_bare_asgi_app_answers_the_same_body_after_reading_the_request() -> None:
    transport = httpx.ASGITransport(app=raw_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        answer = await client.post("/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert answer.status_code == 200
    assert answer.content == BODY
    assert answer.headers["content-type"] == "application/json"


async def test_the_bare_asgi_app_completes_its_lifespan() -> None:
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    await raw_app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_the_bare_rsgi_app_reads_the_body_and_answers_the_same() -> None:
    class Protocol:
        read = False
        answer: tuple = ()

        async def __call__(self) -> bytes:
            self.read = True
            return b"{}"

        def response_bytes(self, status: int, headers: list, body: bytes) -> None:
            self.answer = (status, headers, body)

    protocol = Protocol()
    await rsgi_app(None, protocol)
    assert protocol.read
    assert protocol.answer == (200, [("content-type", "application/json")], BODY)
