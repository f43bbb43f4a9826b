"""Optional API keys: one pure-ASGI middleware that lets a request through with a valid key.

On when ``API_KEYS`` (comma-separated) or ``API_KEYS_FILE`` (a file of keys, one a
line or comma-separated; ``#`` starts a comment) names at least one key; off by
default. A client sends its key as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``. A missing or unknown key is answered 401 with the JSON error
body and ``WWW-Authenticate``; the key is compared with every known one in constant
time (:func:`hmac.compare_digest`) and never written to a log line or an answer.

Open without a key: the health endpoints (probes), the docs (they describe the api;
no key is in them) and, unless ``METRICS_NEED_KEY``, ``/metrics`` (the scraper).

The middleware is added like any a user adds, so it runs on the hot routes by the
same path (:mod:`shared.kit.hot_routes`); :func:`shared.kit.app.create_app` puts it inside
:class:`shared.kit.middleware.RequestContextMiddleware`, so a refused request is counted,
logged (without its key) and answered with its request id.
"""

import hmac
from collections.abc import Iterable
from pathlib import Path

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.kit.errors import error_response
from shared.kit.settings import ServiceSettings

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
HEALTH_PREFIXES = ("/health/", "/v2/health/")
METRICS_PATH = "/metrics"
KEY_HEADER = b"x-api-key"
BEARER = b"bearer "
CHALLENGE = 'Bearer realm="api", charset="UTF-8"'
MISSING_KEY = (
    "this endpoint needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
)
UNKNOWN_KEY = "the API key is not valid"


class ApiKeyError(ValueError):
    """The API key settings are unusable (a missing file, a key with spaces)."""


def parse_keys(text: str) -> tuple[str, ...]:
    """The keys in ``text``: separated by commas or new lines; blanks and ``#`` comments skipped."""
    keys = tuple(
        key.strip()
        for line in text.splitlines()
        for key in line.split("#", 1)[0].split(",")
        if key.strip()
    )
    for key in keys:
        if not key.isascii() or not key.isprintable() or " " in key:
            raise ApiKeyError("an API key must be printable ASCII with no spaces")
    return keys


def bearer_header(keys: SecretStr) -> dict[str, str]:
    """What a client of a keyed api sends: the first of ``keys`` as ``Authorization: Bearer``
    (empty when there is none)."""
    first = parse_keys(keys.get_secret_value())[:1]
    return {"Authorization": f"Bearer {first[0]}"} if first else {}


def configured_keys(settings: ServiceSettings) -> tuple[str, ...]:
    """The keys of ``API_KEYS`` and ``API_KEYS_FILE`` (empty: keys are off)."""
    keys = parse_keys(settings.api_keys.get_secret_value())
    path = settings.api_keys_file
    if path is not None:
        try:
            from_file = parse_keys(Path(path).read_text())
        except OSError as exc:
            raise ApiKeyError(f"API_KEYS_FILE {path}: {exc.strerror}") from None
        if not from_file:
            raise ApiKeyError(f"API_KEYS_FILE {path} holds no key")
        keys += from_file
    return keys


class OpenPaths:
    """Paths that need no key: the health endpoints and the given exact paths."""

    def __init__(self, exact: Iterable[str]) -> None:
        self.exact = frozenset(exact)

    def __contains__(self, path: str) -> bool:
        return path in self.exact or path.startswith(HEALTH_PREFIXES)


class ApiKeyMiddleware:
    """Answer 401 to a request without a known key, except on the open paths."""

    def __init__(self, app: ASGIApp, keys: Iterable[str], metrics_need_key: bool = False) -> None:
        self.app = app
        self.keys = tuple(key.encode() for key in keys)
        if not self.keys:
            raise ApiKeyError("ApiKeyMiddleware needs at least one key")
        self.open_paths = OpenPaths(DOCS_PATHS if metrics_need_key else DOCS_PATHS | {METRICS_PATH})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        presented = presented_key(scope["headers"])
        if presented and self.known(presented):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            message, error = (MISSING_KEY, "") if not presented else (UNKNOWN_KEY, "invalid_token")
            challenge = f'{CHALLENGE}, error="{error}"' if error else CHALLENGE
            response = error_response(
                401, "unauthorized", message, headers={"WWW-Authenticate": challenge}
            )
            await response(scope, receive, send)

    def known(self, presented: bytes) -> bool:
        """Whether ``presented`` is one of the keys; every key is compared, in constant time."""
        found = False
        for key in self.keys:
            found |= hmac.compare_digest(key, presented)
        return found


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request sends (``Authorization: Bearer`` first, then ``X-API-Key``); else None."""
    from_header = None
    for name, value in headers:
        if name == b"authorization" and value[: len(BEARER)].lower() == BEARER:
            return value[len(BEARER) :].strip()
        if name == KEY_HEADER:
            from_header = value.strip()
    return from_header
