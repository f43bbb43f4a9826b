"""What a refusal costs against an answer, by where it is given: web-single's api on one core.

    python -m loadtests.bench.shed_cost [--rounds 3] [--seconds 8] [--port 18190]

Past capacity an api spends its CPU on answers and refusals together, so the share of
capacity it keeps as goodput at 2x is ``(1 - 2c) / (1 - c)``, where ``c`` is a refusal's
cost as a share of an answer's: 0.5 keeps nothing, 0.25 two thirds, 0.1 about 90%.
This measures ``c``. web-single's app (the iris model, exported to a temporary folder)
is served on the host by :mod:`shared.kit.serve`'s uvicorn configuration, pinned to one core,
in three modes in turns, round after round:

* ``answer``: every request answered 200 (the capacity);
* ``app 503``: every request refused by the app's middleware (how the in-flight count
  refuses, and how the delay rule would without the protocol);
* ``protocol 503``: every request refused by :mod:`shared.kit.shedding_protocol` before the
  app runs (how the delay rule refuses).

wrk (on the host's PATH; 64 connections, pinned to another core) loads each; the figures
are medians of the rounds, ``c`` the answer's rate over the refusal's, from the same
rounds. Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import uvicorn

from loadtests.bench.wrk import run as wrk_run
from loadtests.measured import load_average
from shared.kit.overload import QueueDelay
from shared.kit.serve import uvicorn_config
from shared.kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
MODES = ("answer", "app 503", "protocol 503")
SERVER_CORE, LOAD_CORE = 1, 0


def serve(mode: str, port: int, model_dir: str) -> None:
    """Serve web-single's app in ``mode`` until killed (in the server process)."""
    sys.path.insert(0, str(ROOT / "patterns" / "web-single" / "api"))
    os.environ |= {"MODEL_DIR": model_dir, "LOG_LEVEL": "WARNING"}  # read when main loads
    app = importlib.import_module("main").app  # web-single's module, by its folder
    if mode != "answer":
        refuse_all = QueueDelay(1.0, 1.0)
        refuse_all.overloaded = True  # never observed: stays so
        app.in_flight.delay = refuse_all
    config = uvicorn_config(app, ServiceSettings(host="127.0.0.1", port=port))
    if mode == "app 503":
        config.http = "httptools"  # uvicorn's own protocol: the app's middleware refuses
    uvicorn.Server(config).run()


def _wait_ready(port: int) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server on {port} did not start")


def measure(mode: str, port: int, model_dir: str, seconds: int) -> float:
    """Requests/s of one mode's server under wrk."""
    server = subprocess.Popen(
        [sys.executable, "-m", "loadtests.bench.shed_cost", "--serve", mode, str(port), model_dir],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        os.sched_setaffinity(server.pid, {SERVER_CORE})
        _wait_ready(port)
        return wrk_run([f"http://127.0.0.1:{port}/predict"], seconds, 64, unique=False)["rps"]
    finally:
        server.terminate()
        server.wait()


def main() -> int:
    """Measure the modes in turns; print rates and each refusal's cost as a share."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--port", type=int, default=18190)
    parser.add_argument("--serve", nargs=3, metavar=("MODE", "PORT", "MODEL_DIR"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return 0
    if shutil.which("wrk") is None:
        print("shed_cost: needs wrk on the PATH (apt-get install wrk)", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {LOAD_CORE})  # wrk, started from here, inherits it
    load_before = load_average()
    with tempfile.TemporaryDirectory() as model_dir:
        subprocess.run(
            [sys.executable, "-m", "models.export", "--out", model_dir, "--only", "iris"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode in MODES:
                rates[mode].append(measure(mode, args.port, model_dir, args.seconds))
    load_after = load_average()
    answer = statistics.median(rates["answer"])
    print(f"{args.rounds} rounds of {args.seconds} s, wrk 64 connections; load average")
    print(f"{load_before} before, {load_after} after.\n")
    print("| mode | req/s (median) | rounds | cost as a share of an answer |")
    print("|---|---:|---|---:|")
    for mode in MODES:
        median = statistics.median(rates[mode])
        shown = ", ".join(f"{r:.0f}" for r in rates[mode])
        print(f"| {mode} | {median:.0f} | {shown} | {answer / median:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
