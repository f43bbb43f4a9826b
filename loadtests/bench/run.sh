#!/usr/bin/env bash
# make bench: the playground's ratios, measured side by side in one run.
# Each pattern's stack is brought up in turn; wrk runs in the loadtest container
# on that stack's network (no docker-proxy in the path), with the same settings
# for every target; figures go to loadtests/results/bench/, ratios to the screen
# and loadtests/results/bench/ratios.md. Patterns not present are reported n/a.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_PER_TARGET=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
ROUNDS=${BENCH_ROUNDS:-3}
# The bench's stacks are projects of their own (mlsp-bench-<pattern>), so a stack
# left up by `make up` is neither reused nor taken down (nor its volumes wiped),
# and wrk runs on each stack's own network: the api's published port only has to
# be free.
API_PORT=${BENCH_API_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export API_PORT
out=loadtests/results/bench
mkdir -p "$out" && rm -f "$out"/*.json
compose() { COMPOSE_PROJECT_NAME="mlsp-bench-$1" ./compose/compose.sh -f "patterns/$1/compose.yaml" "${@:2}"; }
wrk_in() { # pattern NAME=URL... [--one-connection NAME] [--unique NAME]: medians of ROUNDS turns
  compose "$1" run --rm --no-deps --entrypoint python loadtest -m loadtests.bench.wrk \
    /results/bench "${@:2}" --seconds "$SECONDS_PER_TARGET" --connections "$CONNECTIONS" \
    --rounds "$ROUNDS"
}
have() { [ -f "patterns/$1/compose.yaml" ]; }
up() { compose "$1" up --build --wait --remove-orphans >/dev/null 2>&1 || { compose "$1" up --build --wait; }; }
down() { compose "$1" --profile bench down --volumes --remove-orphans >/dev/null 2>&1 || true; }

echo "--- web-single, the bare endpoint, raw onnxruntime"
up web-single
compose web-single build loadtest >/dev/null 2>&1
compose web-single --profile bench up -d --wait bare bare-fastapi >/dev/null 2>&1
# In turns, round after round: the serving-overhead and framework ratios compare
# targets measured in the same rounds.
wrk_in web-single bare=http://bare:8080/predict bare-fastapi=http://bare-fastapi:8080/predict \
  web-single=http://api:8080/predict "web-single, 1 connection=http://api:8080/predict" \
  --one-connection "web-single, 1 connection"
compose web-single exec -T api python - <loadtests/bench/inference.py >"$out/inference.json"
down web-single

if have sync; then
  echo "--- sync: one predictor call a request, coalesced (the default), then over REST"
  PEER_MAX_CALLS_IN_FLIGHT=0 up sync
  wrk_in sync "sync one call a request=http://api:8080/predict"
  up sync  # recreates the api with the default
  wrk_in sync sync=http://api:8080/predict "sync, 1 connection=http://api:8080/predict" \
    --one-connection "sync, 1 connection"
  PREDICTOR_URL=http://predictor:8080 up sync  # the same calls over the predictor's REST face
  wrk_in sync "sync over REST=http://api:8080/predict" \
    "sync over REST, 1 connection=http://api:8080/predict" \
    --one-connection "sync over REST, 1 connection"
  down sync
fi

if have prediction-cache; then
  echo "--- prediction-cache"
  up prediction-cache
  wrk_in prediction-cache cache-hit=http://api:8080/predict cache-miss=http://api:8080/predict \
    --unique cache-miss
  down prediction-cache
fi

if have batch && grep -q '^batch-bench:' Makefile; then
  echo "--- batch"
  # The bench prints its figures as one JSON line, last.
  COMPOSE_PROJECT_NAME=mlsp-bench-batch make --no-print-directory batch-bench \
    | tee /dev/stderr | tail -n1 >"$out/batch.json"
  compose batch --profile "*" down --volumes --remove-orphans >/dev/null 2>&1 || true
fi

compose web-single run --rm --no-deps --entrypoint python loadtest -m loadtests.bench.report \
  /results/bench --settings "wrk, 1 thread, $CONNECTIONS connections (or 1 where said), ${SECONDS_PER_TARGET} s per target after 2 s warm-up, one row per request; the median of $ROUNDS rounds, the targets of one stack measured in turns"
compose web-single down --volumes --remove-orphans >/dev/null 2>&1 || true
