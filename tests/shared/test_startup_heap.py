"""startup_heap: the objects made to start are kept out of the garbage collector's walks."""

import gc
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from shared.kit.app import create_app
from shared.kit.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[2]

# Run in a process of its own: freezing this test session's heap would keep its garbage.
_CYCLES = """
import gc, weakref
from shared.kit.startup_heap import freeze_startup_heap

class Node:
    pass

def cycle():
    node = Node()
    node.me = node
    return node

def garbage_cycle():  # garbage once made: only the cyclic collector can free it
    return weakref.ref(cycle())

before = garbage_cycle()
kept = cycle()  # still in use at the freeze, garbage after it
kept_ref = weakref.ref(kept)
frozen = freeze_startup_heap()
del kept
after = garbage_cycle()
gc.collect()
print(frozen > 1000, before() is None, kept_ref() is not None, after() is None)
"""


def test_what_was_made_before_the_freeze_is_out_of_the_collectors_reach() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CYCLES], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    # The freeze collects first (the garbage then is freed) and freezes the rest, imports
    # included: what was frozen is never walked again, even once it is garbage (the price,
    # paid for objects that live as long as the process); garbage made later is collected.
    assert out == ["True", "True", "True", "True"]


def test_an_app_freezes_once_its_lifespan_has_started() -> None:
    frozen_before = gc.get_freeze_count()
    app = create_app(ServiceSettings(freeze_startup_heap=True), title="frozen")
    try:
        with TestClient(app) as client:
            assert client.get("/health/live").status_code == 200
            assert gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()  # back to the oldest generation: this session's garbage stays collectable


def test_off_the_app_freezes_nothing() -> None:
    frozen_before = gc.get_freeze_count()
    with TestClient(create_app(ServiceSettings(freeze_startup_heap=False), title="thawed")):
        assert gc.get_freeze_count() == frozen_before
