#!/usr/bin/env bash
# make bench: the playground's ratios, measured side by side in one run.
# Each pattern's stack is brought up in turn; wrk runs in the loadtest container
# on that stack's network (no docker-proxy in the path), with the same settings
# for every target; figures go to loadtests/results/bench/, ratios to the screen
# and loadtests/results/bench/ratios.md. Patterns not present are reported n/a.
# BENCH_ONLY=web-single,scaling (a comma-separated list of the sections below:
# web-single, sync, prediction-cache, batch, scaling) runs only those, in a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECTIONS="web-single sync prediction-cache batch scaling"
for section in ${BENCH_ONLY//,/ }; do
  [[ " $SECTIONS " == *" $section "* ]] || {
    echo "Unknown section '$section' in BENCH_ONLY. Choose from: ${SECTIONS// /, }" >&2; exit 2; }
done

SECONDS_PER_TARGET=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
ROUNDS=${BENCH_ROUNDS:-3}
# The bench's stacks are projects of their own (mlsp-bench-<pattern>[-MLSP_TAG]), so a stack
# left up by `make up` is neither reused nor taken down (nor its volumes wiped),
# and wrk runs on each stack's own network: the api's published port only has to
# be free.
API_PORT=${BENCH_API_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export API_PORT
out=loadtests/results/bench
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$out" && rm -f "$out"/*.json
# MLSP_TAG (when set) names the projects too, so two checkouts' benches never share one.
project() { echo "mlsp-bench-$1${MLSP_TAG:+-$MLSP_TAG}"; }
compose() { COMPOSE_PROJECT_NAME=$(project "$1") ./compose/compose.sh -f "patterns/$1/compose.yaml" "${@:2}"; }
wrk_in() { # pattern NAME=URL... [--one-connection NAME] [--unique NAME]: medians of ROUNDS turns
  compose "$1" run --rm --no-deps --entrypoint python loadtest -m loadtests.bench.wrk \
    /results/bench "${@:2}" --seconds "$SECONDS_PER_TARGET" --connections "$CONNECTIONS" \
    --rounds "$ROUNDS"
}
have() { [ -f "patterns/$1/compose.yaml" ]; }
wanted() { [ -z "${BENCH_ONLY:-}" ] || [[ ",$BENCH_ONLY," == *",$1,"* ]]; }
up() { # pattern [up options...]; the output is shown only when the first try fails
  compose "$1" up --build --wait --remove-orphans "${@:2}" >/dev/null 2>&1 \
    || compose "$1" up --build --wait "${@:2}"
}
down() { compose "$1" --profile bench down --volumes --remove-orphans >/dev/null 2>&1 || true; }

if wanted web-single; then
  echo "--- web-single in 1 and 2 server processes (uvicorn, granian), the bare endpoint, nginx, raw onnxruntime"
  up web-single
  compose web-single build loadtest nginx >/dev/null 2>&1
  bench_targets=(bare bare-fastapi bare-asgi bare-rsgi nginx api-2-processes api-granian
    api-granian-2-workers)
  compose web-single --profile bench up -d --wait --no-deps "${bench_targets[@]}" >/dev/null 2>&1 \
    || compose web-single --profile bench up -d --wait --no-deps "${bench_targets[@]}"
  # In turns, round after round: each ratio compares targets measured in the same rounds.
  wrk_in web-single nginx=http://nginx:8080/predict bare=http://bare:8080/predict \
    bare-fastapi=http://bare-fastapi:8080/predict web-single=http://api:8080/predict \
    "bare ASGI app=http://bare-asgi:8080/predict" "bare RSGI app=http://bare-rsgi:8080/predict" \
    "web-single, 2 processes=http://api-2-processes:8080/predict" \
    "web-single, granian=http://api-granian:8080/predict" \
    "web-single, granian 2 workers=http://api-granian-2-workers:8080/predict" \
    "web-single, 1 connection=http://api:8080/predict" --one-connection "web-single, 1 connection"
  compose web-single exec -T api python - <loadtests/bench/inference.py >"$out/inference.json"
  down web-single
fi

if have sync && wanted sync; then
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

if have prediction-cache && wanted prediction-cache; then
  echo "--- prediction-cache"
  up prediction-cache
  wrk_in prediction-cache cache-hit=http://api:8080/predict cache-miss=http://api:8080/predict \
    --unique cache-miss
  down prediction-cache
fi

if have batch && wanted batch && grep -q '^batch-bench:' Makefile; then
  echo "--- batch"
  # The bench prints its figures as one JSON line, last.
  COMPOSE_PROJECT_NAME=$(project batch) make --no-print-directory batch-bench \
    | tee /dev/stderr | tail -n1 >"$out/batch.json"
  compose batch --profile "*" down --volumes --remove-orphans >/dev/null 2>&1 || true
fi

if have prediction-cache && wanted scaling; then
  echo "--- scaling: prediction-cache's predictor (iris-boosted, CPU-bound), 1 and 2 replicas"
  # Each replica by its own address: the tier's capacity, whichever client spreads the calls.
  up prediction-cache --scale predictor=2
  replica() { echo "http://$(project prediction-cache)-predictor-$1:8080/v2/models/iris-boosted/infer"; }
  body='{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}'
  wrk_in prediction-cache "predictor, 1 replica=$(replica 1)" \
    "predictor, 2 replicas=$(replica 1),$(replica 2)" \
    --body "predictor, 1 replica=$body" --body "predictor, 2 replicas=$body"
  down prediction-cache
fi

compose web-single run --rm --no-deps --entrypoint python loadtest -m loadtests.bench.report \
  /results/bench --settings "load average at the start $load_at_start (other work on the machine); wrk, 1 thread, $CONNECTIONS connections (or 1 where said), ${SECONDS_PER_TARGET} s per target after 2 s warm-up, one row per request; the median of $ROUNDS rounds, the targets of one stack measured in turns"
compose web-single down --volumes --remove-orphans >/dev/null 2>&1 || true
