#!/usr/bin/env bash
# The docker-compose deployment, for real: `deploy/test-compose.sh up` builds the
# images (Dockerfile.api, Dockerfile.ws) and starts docker-compose.yml as
# a user would, then checks the admin CLI inside; `deploy/test-compose.sh down` removes
# it. Base images that cannot be pulled (no registry reachable) are built as
# stand-ins from Debian packages (deploy/standins), under the same names.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's docker 20.10 CLI: BuildKit without buildx, as docker-compose 1.29 uses it.
export PATH=/usr/bin:$PATH DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1
PROJECT=tidingsci
STATE=${TIDINGS_COMPOSE_STATE:-$HOME/.cache/tidings-compose}
mkdir -p "$STATE"
compose() {
  local tool=(docker-compose)
  command -v docker-compose >/dev/null || tool=(docker compose)
  # The compose file insists on JWT_SECRET; `down` and `logs` need no real one.
  JWT_SECRET=${JWT_SECRET:-not-used-by-down-or-logs} \
    "${tool[@]}" -p "$PROJECT" -f docker-compose.yml -f "$STATE/override.yml" "$@"
}

log() { printf '\n== compose: %s\n' "$*"; }

apt_install() {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_docker() {
  command -v dockerd >/dev/null || apt_install docker.io
  command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 \
    || apt_install docker-compose
  if ! docker info >/dev/null 2>&1; then
    nohup dockerd >"$STATE/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  fi
  docker info >/dev/null
}

# An image is there, or can be pulled (where a registry is reachable).
have() {
  docker image inspect "$1" >/dev/null 2>&1 || timeout 300 docker pull -q "$1" >/dev/null 2>&1
}

standins() {
  if ! have debian:bookworm-slim; then
    log "debian:bookworm-slim from debootstrap"
    command -v debootstrap >/dev/null || apt_install debootstrap
    local root="$STATE/rootfs"
    rm -rf "$root"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$STATE/debootstrap.log"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
    rm -rf "$root"
  fi
  if ! have rust:1-slim-bookworm; then
    log "rust:1-slim-bookworm from this machine's toolchain"
    local ctx="$STATE/rust-context"
    rm -rf "$ctx" && mkdir -p "$ctx/toolchain"
    local sysroot
    sysroot=$(rustc --print sysroot)
    cp -a "$sysroot/bin" "$sysroot/lib" "$ctx/toolchain/"
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
    docker build -q -f deploy/standins/rust.Dockerfile -t rust:1-slim-bookworm "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
  local image file
  for pair in postgres:16=postgres redis:7=redis nginx:1.27=nginx; do
    image=${pair%%=*} file=${pair##*=}
    if ! have "$image"; then
      log "$image from Debian packages"
      docker build -q -f "deploy/standins/$file.Dockerfile" -t "$image" deploy/standins >/dev/null
    fi
  done
}

up() {
  ensure_docker
  standins
  # dockerd's own open-file limit here is 20,000: the compose file's 65,536
  # is for real hosts. The override is the documented way to lower it.
  cat >"$STATE/override.yml" <<'YAML'
version: "3.8"
services:
  ws1: { ulimits: { nofile: { soft: 16384, hard: 16384 } } }
  ws2: { ulimits: { nofile: { soft: 16384, hard: 16384 } } }
YAML
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  log "build and up"
  export JWT_SECRET TIDINGS_ADMIN_PASSWORD
  JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  TIDINGS_ADMIN_PASSWORD=${TIDINGS_ADMIN_PASSWORD:-compose-admin-password}
  compose up -d --build
  for _ in $(seq 1 120); do
    curl -fsS http://127.0.0.1:8080/healthz >/dev/null 2>&1 \
      && curl -fsS http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
    sleep 1
  done
  if ! curl -fsS http://127.0.0.1:8080/readyz; then
    compose ps
    compose logs --tail 50
    exit 1
  fi
  log "the admin CLI in the images"
  compose exec -T api tidings --version
  echo 'carol-password' | compose exec -T api tidings user add carol
  compose exec -T ws1 tidings token carol --ttl 5m >/dev/null
  echo
}

case "${1:-}" in
  up) up ;;
  down) compose down -v --remove-orphans ;;
  # SIGTERM to one service (sockets close with 1001), then start it again.
  restart) compose restart "${2:?which service}" ;;
  logs) compose logs --tail "${2:-100}" ;;
  *) echo "usage: deploy/test-compose.sh up|down|restart SERVICE|logs [lines]" >&2; exit 2 ;;
esac
