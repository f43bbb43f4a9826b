#!/usr/bin/env bash
# `docker compose` for the playground: makes sure an engine answers, picks the
# base images, then runs `docker compose "$@"`. The Makefile and the e2e tests
# call this, so both run the stack the same way.
#
# Base images: PYTHON_IMAGE, REDIS_IMAGE, POSTGRES_IMAGE and PROMETHEUS_IMAGE
# default to the public images. When one can be neither found locally nor
# pulled (no registry reachable), or MLSP_OFFLINE=1, the local stand-ins built
# from Debian packages by compose/offline/build-standins.sh are used instead,
# and built first when missing. The choice is remembered in .mlsp/images.env
# (`make clean` forgets it). The passwords of Redis and PostgreSQL are made
# once per compose project, which shares its volumes with every checkout, and
# kept outside the checkout (compose/secrets.sh says where and why).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
offline_dir=$root/compose/offline
cache=$root/.mlsp/images.env

"$offline_dir/ensure-docker.sh"

# NAME  public image  stand-in kind
images=(
  "PYTHON_IMAGE python:3.11.11-slim-bookworm python"
  "REDIS_IMAGE redis:7.4.2-bookworm redis"
  "POSTGRES_IMAGE postgres:15.10-bookworm postgres"
  "PROMETHEUS_IMAGE prom/prometheus:v2.53.3 prometheus"
)
standin_tag() { # kind -> tag, as build-standins.sh names them
  case $1 in
    python) echo "${PYTHON_STANDIN:-mlsp-standin/python:3.11-bookworm}" ;;
    redis) echo "${REDIS_STANDIN:-mlsp-standin/redis:7-bookworm}" ;;
    postgres) echo "${POSTGRES_STANDIN:-mlsp-standin/postgres:15-bookworm}" ;;
    prometheus) echo "${PROMETHEUS_STANDIN:-mlsp-standin/prometheus:bookworm}" ;;
  esac
}
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
# A registry that does not answer can hang a pull: each is stopped after this long.
pull_timeout_s=${MLSP_PULL_TIMEOUT_S:-120}

bounded() { # SECONDS CMD...: CMD, stopped after SECONDS (GNU timeout, or a watchdog where
  # there is none, as on stock macOS); fails when CMD fails or is stopped
  local seconds=$1; shift
  if command -v timeout >/dev/null 2>&1; then timeout "$seconds" "$@"; return; fi
  "$@" &
  local pid=$! status=0
  (sleep "$seconds" & sleeper=$!
   trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
   wait "$sleeper" && kill "$pid" 2>/dev/null) >/dev/null 2>&1 &
  local watchdog=$!
  wait "$pid" || status=$?
  kill "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  return "$status"
}

resolve() { # NAME PUBLIC KIND -> prints the image to use
  local name=$1 public=$2 kind=$3
  if [ "${MLSP_OFFLINE:-0}" != 1 ]; then
    if have_image "$public" || bounded "$pull_timeout_s" docker pull -q "$public" >/dev/null 2>&1; then
      echo "$public"; return
    fi
    echo "compose.sh: cannot pull $public; using the local stand-in for $name" >&2
  fi
  local tag; tag=$(standin_tag "$kind")
  have_image "$tag" || "$offline_dir/build-standins.sh" "$kind" >&2
  echo "$tag"
}

if [ ! -f "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  for entry in "${images[@]}"; do
    read -r name public kind <<<"$entry"
    [ -n "${!name:-}" ] || echo "$name=$(resolve "$name" "$public" "$kind")"
  done >"$cache.tmp"
  mv "$cache.tmp" "$cache"
fi

# Variables set by the caller win over the remembered choice.
while IFS='=' read -r name value; do
  [ -n "${!name:-}" ] || export "$name=$value"
done <"$cache"
# Stand-ins are built on demand; a remembered one may have been removed since.
for entry in "${images[@]}"; do
  read -r name _ kind <<<"$entry"
  if [ "${!name:-}" = "$(standin_tag "$kind")" ] && ! have_image "${!name}"; then
    "$offline_dir/build-standins.sh" "$kind" >&2
  fi
done

# A .env at the top of the checkout (see .env.example; never committed) sets variables
# for every pattern; variables set by the caller win over it.
if [ -f "$root/.env" ]; then
  while IFS='=' read -r name value; do
    case $name in ''|'#'*) continue ;; esac
    [ -n "${!name:-}" ] || export "$name=$value"
  done <"$root/.env"
fi

# Passwords of the stateful services (Redis, PostgreSQL): one pair per compose project,
# shared by every checkout that uses the project, so no password is written in a compose
# file and a second clone finds its data (see compose/secrets.sh). Variables set by the
# caller (or .env) win.
. "$root/compose/secrets.sh"
parse_compose_args "$@"
use_project_secrets "$root"

export HOST_UID=${HOST_UID:-$(id -u)} HOST_GID=${HOST_GID:-$(id -g)}
# The commit the images are built from: the mlsp_build_info metric and the images' label.
GIT_SHA=${GIT_SHA:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || true)}
export GIT_SHA=${GIT_SHA:-unknown}
if removes_volumes; then  # the passwords go with the data they protect
  ${DOCKER_COMPOSE:-docker compose} "$@" && status=0 || status=$?
  [ "$status" != 0 ] || forget_project_secrets
  exit "$status"
fi
exec ${DOCKER_COMPOSE:-docker compose} "$@"
