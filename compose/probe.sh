#!/usr/bin/env bash
# The container healthcheck of every Python service: `probe http://127.0.0.1:PORT/PATH`.
# Exits 0 when the URL answers 200 within 2 s, 1 otherwise (refused, slow, 503 not ready).
# bash built-ins only: a probe every few seconds costs no interpreter start-up (a
# `python -m shared.kit.probe` probe cost each idle service about 2% of a core; see
# loadtests/reports/healthchecks.md).
url=${1:?usage: probe http://127.0.0.1:PORT/PATH}
url=${url#http://}
hostport=${url%%/*}
path=/${url#*/}
[ "$path" = "/$url" ] && path=/
{ exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"; } 2>/dev/null \
  || { echo "probe: nothing answers on $hostport"; exit 1; }
printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
read -r -t 2 status <&3 || { echo "probe: no answer from $1 within 2 s"; exit 1; }
[[ $status == "HTTP/1."?" 200 "* ]] || { echo "probe: $1 answered ${status%$'\r'}"; exit 1; }
