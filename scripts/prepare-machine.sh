#!/usr/bin/env bash
# Prepare this machine for deploybot's tests and for local use (idempotent).
#
# Installs (Debian packages) and starts: Docker with a single-node Swarm, a
# local registry on 127.0.0.1:5000, a busybox base image, a throwaway
# PostgreSQL cluster, and the Python virtual environment in .venv.
# The recipe is the one DESIGN.md records as verified on these machines.
# `restart-docker`: a graceful restart of dockerd, back with the Swarm ready (tests use it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${DEPLOYBOT_STATE_DIR:-/var/lib/deploybot-dev}
DOCKER=/usr/bin/docker
REGISTRY_ADDR=${DEPLOYBOT_TEST_REGISTRY:-127.0.0.1:5000}
BASE_IMAGE=${DEPLOYBOT_BASE_IMAGE:-deploybot/busybox:latest}
PG_PORT=${DEPLOYBOT_TEST_PG_PORT:-55432}
PG_DIR=$STATE/postgres
mkdir -p "$STATE"

log() { printf '[prepare] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
  local want=(docker.io busybox-static docker-registry postgresql git wrk openssh-server openssh-client chromium)
  local missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

start_docker() {
  if ! $DOCKER info >/dev/null 2>&1; then
    log "starting dockerd"
    # Appended to: the log of a daemon before a restart (restart-docker) is kept.
    (as_root setsid nohup /usr/sbin/dockerd >>"$STATE/dockerd.log" 2>&1 &)
    for _ in $(seq 1 120); do
      [ -S /var/run/docker.sock ] && $DOCKER info >/dev/null 2>&1 && break
      sleep 0.5
    done
    $DOCKER info >/dev/null 2>&1 || { tail -50 "$STATE/dockerd.log" >&2; exit 1; }
  fi
  if [ "$($DOCKER info --format '{{.Swarm.LocalNodeState}}')" != "active" ]; then
    log "initialising swarm"
    $DOCKER swarm init --advertise-addr 127.0.0.1 >/dev/null
  fi
}

# Until the Swarm is active, this node Ready and the registry answers: the machine as the
# tests expect it (after a restart the manager needs a moment to take its node back).
wait_swarm_ready() {
  for _ in $(seq 1 240); do
    if [ "$($DOCKER info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}' 2>/dev/null)" = "active true" ] \
      && [ "$($DOCKER node inspect self --format '{{.Status.State}}' 2>/dev/null)" = "ready" ] \
      && curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
      return
    fi
    sleep 0.25
  done
  log "the swarm is not ready after a minute"
  tail -30 "$STATE/dockerd.log" >&2
  exit 1
}

# A real restart of the machine's dockerd (the e2e test of a daemon restart mid-rollout uses
# it): SIGTERM, wait for the daemon to exit (it stops its containers first), start it the
# way start_docker does, wait for the Swarm. Registry and PostgreSQL are native processes
# and go on running. Prints the UTC times of the stop and of the Swarm being ready.
restart_docker() {
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null || pidof dockerd || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "stopping dockerd (pid $pid) at $(date -u +%H:%M:%S.%N | cut -c1-12) UTC"
    as_root kill -TERM "$pid"
    for _ in $(seq 1 1200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd (pid $pid) did not stop within 120 s"
      exit 1
    fi
  fi
  start_docker
  wait_swarm_ready
  log "dockerd is back, swarm ready at $(date -u +%H:%M:%S.%N | cut -c1-12) UTC"
}

start_registry() {
  if curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then return; fi
  log "starting registry on $REGISTRY_ADDR"
  mkdir -p "$STATE/registry"
  cat >"$STATE/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
YML
  (setsid nohup /usr/bin/docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &)
  for _ in $(seq 1 60); do
    curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && return
    sleep 0.5
  done
  tail -20 "$STATE/registry.log" >&2
  exit 1
}

make_base_image() {
  if $DOCKER image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  log "importing $BASE_IMAGE from busybox-static"
  local rootfs
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,var/www,root,proc,sys,dev}
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf /bin/busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  chmod 1777 "$rootfs/tmp"
  tar -C "$rootfs" -c . | $DOCKER import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

start_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  if [ ! -f "$PG_DIR/PG_VERSION" ]; then
    log "creating PostgreSQL cluster in $PG_DIR"
    mkdir -p "$PG_DIR"
    chown postgres:postgres "$PG_DIR"
    su postgres -s /bin/sh -c "$bin/initdb -D '$PG_DIR' -A trust -U postgres" >/dev/null
  fi
  if ! su postgres -s /bin/sh -c "$bin/pg_isready -h 127.0.0.1 -p $PG_PORT" >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    su postgres -s /bin/sh -c "$bin/pg_ctl -D '$PG_DIR' -l '$PG_DIR/server.log' -w \
      -o \"-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off\" start" >/dev/null
  fi
}

python_env() {
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    log "creating .venv"
    python3 -m venv "$ROOT/.venv"
  fi
  "$ROOT/.venv/bin/pip" install -q --upgrade pip >/dev/null
  "$ROOT/.venv/bin/pip" install -q -e "$ROOT[dev]"
  node_clients
}

# The npm graphql-ws client (the reference graphql-transport-ws implementation) for the tests.
node_clients() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs and npm"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  if [ ! -d "$ROOT/tests/js/node_modules/graphql-ws" ] \
    || [ "$ROOT/tests/js/package-lock.json" -nt "$ROOT/tests/js/node_modules/.package-lock.json" ]; then
    log "installing the test's npm clients"
    (cd "$ROOT/tests/js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

# deploybot's own image base (Debian bookworm via debootstrap), for deploy/ and its e2e test.
make_debian_image() {
  DEPLOYBOT_STATE_DIR="$STATE" bash "$ROOT/deploy/base-image.sh"
}

case "${1:-all}" in
  services)
    install_packages; start_docker; start_registry; make_base_image; make_debian_image; start_postgres ;;
  python) python_env ;;
  restart-docker) restart_docker ;;
  all)
    install_packages; start_docker; start_registry; make_base_image; make_debian_image; start_postgres; python_env ;;
  *) echo "usage: $0 [all|services|python|restart-docker]" >&2; exit 2 ;;
esac
log "ready: docker swarm, registry $REGISTRY_ADDR, base image $BASE_IMAGE, postgres 127.0.0.1:$PG_PORT"
