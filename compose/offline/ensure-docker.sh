#!/usr/bin/env bash
# Make sure a Docker engine and the compose v2 plugin answer.
#
# Already running: does nothing. Otherwise, as root on Debian/Ubuntu, installs the
# engine (docker.io) and the compose v2 plugin from Debian packages and starts
# dockerd in the background (its pid goes to $DOCKERD_PIDFILE, so callers can stop
# it). Anywhere else it stops with a message saying what to install.
set -euo pipefail

DOCKERD_PIDFILE=${DOCKERD_PIDFILE:-/tmp/mlsp-dockerd.pid}
DOCKERD_LOG=${DOCKERD_LOG:-/tmp/mlsp-dockerd.log}
PLUGIN_DIR=/usr/libexec/docker/cli-plugins

say() { echo "ensure-docker: $*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }
compose_answers() { docker compose version >/dev/null 2>&1; }

if engine_answers && compose_answers; then
  exit 0
fi

# The Debian mirror this machine's apt uses (deb822 "URIs:" or one-line "deb URL" form).
debian_mirror() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ {print $2} /^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' \
    | grep -E '/debian/?$' | grep -v security | head -n1 || true
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

if ! can_install; then
  engine_answers || say "no Docker engine answers. Start Docker Desktop (macOS, Windows), or install Docker Engine (https://docs.docker.com/engine/install/) and start it."
  compose_answers || say "the Docker Compose v2 plugin is missing (docker compose version fails). Install docker-compose-plugin."
  exit 1
fi

apt_updated=
apt_update_once() { [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }; }

if ! command -v dockerd >/dev/null; then
  say "installing the Docker engine (docker.io)"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
# docker.io brings its own CLI in /usr/bin; a newer one may already be first on PATH: both work.

if ! compose_answers; then
  say "installing the compose v2 plugin"
  # bookworm only has compose v1; trixie's docker-compose package is the static v2 plugin.
  # Use a private apt state so the system's sources and lists stay untouched.
  state=$(mktemp -d)
  mirror=$(debian_mirror)
  mirror=${mirror:-http://deb.debian.org/debian}
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/etc"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} trixie main" >"$state/etc/trixie.list"
  apt_opts=(-o Dir::Etc::SourceList="$state/etc/trixie.list" -o Dir::Etc::SourceParts=/dev/null
            -o Dir::State::Lists="$state/lists" -o Dir::Cache="$state/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq
  (cd "$state" && apt-get "${apt_opts[@]}" download docker-compose >/dev/null)
  dpkg -x "$state"/docker-compose_*.deb "$state/x"
  mkdir -p "$PLUGIN_DIR"
  install -m 0755 "$state/x/usr/libexec/docker/cli-plugins/docker-compose" "$PLUGIN_DIR/docker-compose"
  rm -rf "$state"
fi

if ! engine_answers; then
  say "starting dockerd (log: $DOCKERD_LOG)"
  # --userland-proxy=false: a published port is forwarded by the kernel (iptables), not by a
  # docker-proxy process copying every byte. Measured by `make overload` (2026-12-04): with
  # the proxy on the api's CPU, web-single answered 5.0k req/s there; with it off, 12.9k.
  nohup dockerd --userland-proxy=false >"$DOCKERD_LOG" 2>&1 &
  echo $! >"$DOCKERD_PIDFILE"
  for _ in $(seq 1 60); do engine_answers && break; sleep 0.5; done
  engine_answers || { say "dockerd did not come up; see $DOCKERD_LOG"; exit 1; }
fi

docker compose version >&2
