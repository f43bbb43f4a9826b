"""Change the canary's weights from inside the api container (its loopback is the only way in).

    python -m admin promote          # canary 100, primary 0   (make canary-promote)
    python -m admin rollback         # primary 100, canary 0   (make canary-rollback)
    python -m admin set 50 50        # primary 50, canary 50   (make canary-weights ...)
    python -m admin show             # the weights in force and where they come from

Sends ``PUT /canary/weights`` (or ``GET /canary``) to the api on 127.0.0.1:``PORT``, with
the first of ``API_KEYS`` when keys are on, and prints the answer. Exits 1 on a refusal
(422 naming the field, 503 when Redis cannot store them): then nothing changed.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from shared.kit.api_keys import parse_keys

PLANS = {"promote": (0, 100), "rollback": (100, 0)}


def request(method: str, path: str, body: dict[str, int] | None = None) -> tuple[int, str]:
    """``method path`` on the api of this container: the status and the body."""
    port = os.environ.get("PORT", "8080")
    headers = {"Content-Type": "application/json"}
    keys = parse_keys(os.environ.get("API_KEYS", ""))
    if keys:
        headers["X-API-Key"] = keys[0]
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(call, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 when the api took it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("promote", help="canary 100, primary 0")
    commands.add_parser("rollback", help="primary 100, canary 0")
    commands.add_parser("show", help="the weights in force")
    chosen = commands.add_parser("set", help="PRIMARY CANARY percent")
    chosen.add_argument("primary", type=int)
    chosen.add_argument("canary", type=int)
    args = parser.parse_args(argv)
    if args.command == "show":
        status, text = request("GET", "/canary")
    else:
        primary, canary = PLANS.get(args.command) or (args.primary, args.canary)
        status, text = request("PUT", "/canary/weights", {"primary": primary, "canary": canary})
    print(text)
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
