"""A container's environment: plain values, and the secrets compose passes as sentinels
taken from the Secret ``mlsp-secrets`` instead (never a value in a manifest)."""

import json
from collections.abc import Iterable

from compose.config import OPTIONAL_SECRETS, SECRETS, Doc, sentinel
from compose.k8s.common import SECRET_NAME, substitute


def env(svc: Doc, extra: Iterable[str] = ()) -> list[Doc]:
    """The environment, the secrets it embeds first (for ``$(NAME)`` expansion).

    ``extra`` are the command's words: a secret they embed is needed as a variable too.
    """
    environment = {
        k: str(v if v is not None else "") for k, v in (svc.get("environment") or {}).items()
    }
    text = json.dumps([environment, *extra])
    out: list[Doc] = [
        {"name": s, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": s}}}
        for s in SECRETS
        if sentinel(s) in text
    ]
    for key, value in environment.items():
        if key in SECRETS and value == sentinel(key):
            continue
        optional = next((o for o in OPTIONAL_SECRETS if value == sentinel(o)), None)
        if optional is not None:
            ref = {"name": SECRET_NAME, "key": optional, "optional": True}
            out.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
            continue
        out.append({"name": key, "value": substitute(value)})
    return out
