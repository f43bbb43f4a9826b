"""In-process cost of a hot request (``POST /predict``) with 0, 1 and 3 added middlewares.

    python -m loadtests.bench.middleware_cost [--requests N] [--rounds R] [--only NAME]

Calls the ASGI app directly (no server, no socket), so the figures are the app's own
time per request: the framework, the house middleware and the added ones, around an
endpoint that answers a fixed JSON body. The added middlewares are pure-ASGI
pass-throughs (what any middleware costs before its own work), plus two real ones
for scale: the API-key check (``API_KEYS`` set) and Starlette's CORS. Configurations
run in turns, round after round, and each figure is the median of its rounds; the
ratio is to "0 added" measured in the same rounds. The time is the process's CPU time
(:func:`time.process_time`): on a quiet machine the same as the wall time of this
single-threaded loop, and on a busy one it leaves out the time other processes took the
core. Prints a Markdown table; asserts nothing (timings belong in benchmarks).
``--only "0 added (the shortcut)"`` runs with any tree's ``shared`` (a before/after of
the hot path: ``PYTHONPATH=<tree> python path/to/middleware_cost.py --only ...``).
"""

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.kit.app import ServiceApp, add_hot_route, create_app, json_response
from shared.kit.schemas import ErrorResponse
from shared.kit.settings import ServiceSettings

KEY = "bench-key-0123456789"
BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'


class PassThrough:
    """A pure-ASGI middleware that does nothing but call the next app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def predict(_: Request) -> Response:
    """A fixed answer: the endpoint's own cost is left out."""
    return json_response({"predictions": [{"label": "setosa"}]})


def hot_app(pass_throughs: int = 0, **settings: object) -> ServiceApp:
    """An app with hot ``POST /predict`` and ``pass_throughs`` added middlewares."""
    app = create_app(ServiceSettings(access_log=False, **settings), title="bench")
    add_hot_route(app, "/predict", predict, request_model=None, response_model=ErrorResponse)
    for _ in range(pass_throughs):
        app.add_middleware(PassThrough)
    return app


def with_cors() -> ServiceApp:
    app = hot_app()
    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"])
    return app


BASE = "0 added (the shortcut)"
CONFIGURATIONS: dict[str, Callable[[], ServiceApp]] = {
    BASE: hot_app,
    "1 added (pass-through)": lambda: hot_app(1),
    "3 added (pass-through)": lambda: hot_app(3),
    "API keys on (1 added)": lambda: hot_app(api_keys=KEY),
    "CORS (1 added)": with_cors,
}


def scope() -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"x-api-key", KEY.encode()),
            (b"origin", b"https://app.example"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def receive() -> Message:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def seconds_per_request(app: ASGIApp, requests: int) -> float:
    """Mean CPU time of one request over ``requests`` sent one after another."""
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.process_time()
    for _ in range(requests):
        await app(scope(), receive, send)
    elapsed = time.process_time() - started
    if set(statuses) != {200}:
        raise SystemExit(f"not every answer was 200: {sorted(set(statuses))}")
    return elapsed / requests


async def measure(requests: int, rounds: int, only: list[str]) -> dict[str, list[float]]:
    apps = {name: make() for name, make in CONFIGURATIONS.items() if not only or name in only}
    for app in apps.values():  # builds each stack (and the shortcut) before timing
        await seconds_per_request(app, 100)
    figures: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            figures[name].append(await seconds_per_request(app, requests))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per configuration a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--only", action="append", default=[], choices=CONFIGURATIONS, help="repeatable"
    )
    args = parser.parse_args()
    figures = asyncio.run(measure(args.requests, args.rounds, args.only))
    base = statistics.median(figures.get(BASE) or next(iter(figures.values())))
    print(f"{args.requests} requests x {args.rounds} rounds, medians of the rounds\n")
    print("| configuration | CPU us per request | vs 0 added |")
    print("|---|---:|---:|")
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1e6:.1f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
