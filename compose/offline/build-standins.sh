#!/usr/bin/env bash
# Build local stand-ins for the public base images, from Debian packages.
#
# For machines where no container registry answers (air-gapped, or a mirror of
# the package repositories only). Each stand-in behaves like the public image as
# far as the patterns use it:
#   $PYTHON_STANDIN    python3 + venv + CA bundle       (for python:3.11-slim)
#   $REDIS_STANDIN     redis-server, runs as redis in /data   (for redis:7)
#   $POSTGRES_STANDIN  postgres with the official entrypoint's env contract:
#                      POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, PGDATA,
#                      /docker-entrypoint-initdb.d          (for postgres:15)
#   $PROMETHEUS_STANDIN prometheus                            (for prom/prometheus)
# Usage: build-standins.sh [python|redis|postgres|prometheus ...]   (default: all)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PYTHON_STANDIN=${PYTHON_STANDIN:-mlsp-standin/python:3.11-bookworm}
REDIS_STANDIN=${REDIS_STANDIN:-mlsp-standin/redis:7-bookworm}
POSTGRES_STANDIN=${POSTGRES_STANDIN:-mlsp-standin/postgres:15-bookworm}
PROMETHEUS_STANDIN=${PROMETHEUS_STANDIN:-mlsp-standin/prometheus:bookworm}
WORK=${STANDIN_WORKDIR:-/var/tmp/mlsp-standins}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

say() { echo "build-standins: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (debootstrap, chroot)"; exit 1; }
command -v debootstrap >/dev/null || {
  say "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

debian_mirror() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ {print $2} /^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' \
    | grep -E '/debian/?$' | grep -v security | head -n1 || true
}
MIRROR=${DEBIAN_MIRROR:-$(debian_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# One minimal bookworm root, made once and copied for each stand-in.
minbase() {
  local root=$WORK/minbase
  if [ ! -f "$root/.done" ]; then
    rm -rf "$root"; mkdir -p "$WORK"
    say "debootstrap bookworm from $MIRROR"
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
    # Don't let package scripts start services inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
    touch "$root/.done"
  fi
  echo "$root"
}

# fresh_root NAME PACKAGES...: copy of minbase with the packages installed.
fresh_root() {
  local name=$1; shift
  local root=$WORK/$name
  rm -rf "$root"; cp -a "$(minbase)" "$root"; rm -f "$root/.done"
  mkdir -p "$root/etc/postgresql-common"
  echo "create_main_cluster = false" >"$root/etc/postgresql-common/createcluster.conf"
  mkdir -p "$root/etc/ssl/certs"; cp "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
  say "$name: apt-get install $*"
  chroot "$root" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $* >/dev/null"
  # Installing ca-certificates rebuilds the bundle: put back the host's (it may carry a local CA).
  cp "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
  chroot "$root" /bin/sh -c "apt-get clean && rm -rf /var/lib/apt/lists/*"
  rm -f "$root/usr/sbin/policy-rc.d"
  echo "$root"
}

import() { # import ROOT TAG CHANGES...
  local root=$1 tag=$2; shift 2
  local changes=()
  for c in "$@"; do changes+=(--change "$c"); done
  tar -C "$root" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
  rm -rf "$root"
  say "built $tag"
}

build_python() {
  local root; root=$(fresh_root python python3 python3-venv ca-certificates)
  ln -sf python3 "$root/usr/bin/python"
  import "$root" "$PYTHON_STANDIN" \
    'ENV LANG=C.UTF-8' 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' 'CMD ["python3"]'
}

build_redis() {
  local root; root=$(fresh_root redis redis-server)
  mkdir -p "$root/data"; chroot "$root" chown redis:redis /data
  import "$root" "$REDIS_STANDIN" 'USER redis' 'WORKDIR /data' 'EXPOSE 6379' \
    'CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data"]'
}

build_postgres() {
  local root; root=$(fresh_root postgres postgresql-15 ca-certificates)
  install -m 0755 "$here/postgres-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
  mkdir -p "$root/docker-entrypoint-initdb.d" "$root/var/lib/postgresql/data" "$root/var/run/postgresql"
  chroot "$root" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
  import "$root" "$POSTGRES_STANDIN" \
    'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV PGDATA=/var/lib/postgresql/data' 'ENV LANG=C.UTF-8' 'USER postgres' 'EXPOSE 5432' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
}

build_prometheus() {
  local root; root=$(fresh_root prometheus prometheus wget)  # wget: the healthcheck, as in the public image
  mkdir -p "$root/prometheus" "$root/etc/prometheus"; chroot "$root" chown prometheus /prometheus
  import "$root" "$PROMETHEUS_STANDIN" 'USER prometheus' 'WORKDIR /prometheus' 'EXPOSE 9090' \
    'ENTRYPOINT ["/usr/bin/prometheus"]' \
    'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'
}

targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(python redis postgres prometheus)
for t in "${targets[@]}"; do "build_$t"; done
