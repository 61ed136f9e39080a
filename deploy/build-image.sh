#!/usr/bin/env bash
# Build deploybot's images from this checkout onto the Debian base and push them to the
# registry: $REGISTRY/deploybot/deploybot:$TAG and $REGISTRY/deploybot/postgres:15
# (DEPLOYBOT_PUSH=0 leaves them local: enough for a one-node Swarm).
# deploybot and its dependencies go in as wheels built here (no index inside the build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGISTRY=${DEPLOYBOT_REGISTRY:-127.0.0.1:5000}
TAG=${1:-latest}
DOCKER=/usr/bin/docker
bash "$ROOT/deploy/base-image.sh"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
cp "$ROOT/deploy/Dockerfile" "$ROOT/deploy/postgres.Dockerfile" "$ROOT/deploy/postgres-entrypoint.sh" "$BUILD/"
PYTHON=${DEPLOYBOT_PYTHON:-$ROOT/.venv/bin/python}
# Dependencies' wheels are cached per pyproject.toml; deploybot's own is built every time.
DEPS="${DEPLOYBOT_STATE_DIR:-/var/lib/deploybot-dev}/wheelhouse-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-12)"
if [ ! -d "$DEPS" ]; then
  "$PYTHON" -m pip wheel -q --disable-pip-version-check "$ROOT" -w "$DEPS.part" 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
  rm -f "$DEPS.part"/deploybot-*.whl
  mv "$DEPS.part" "$DEPS"
fi
mkdir -p "$BUILD/wheelhouse"
cp "$DEPS"/*.whl "$BUILD/wheelhouse/"
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps "$ROOT" -w "$BUILD/wheelhouse" 2>&1 \
  | grep -v "^WARNING: Location" >&2 || true
ls "$BUILD"/wheelhouse/deploybot-*.whl >/dev/null
$DOCKER build -q -t "$REGISTRY/deploybot/deploybot:$TAG" -f "$BUILD/Dockerfile" "$BUILD" >/dev/null
$DOCKER build -q -t "$REGISTRY/deploybot/postgres:15" -f "$BUILD/postgres.Dockerfile" "$BUILD" >/dev/null
if [ "${DEPLOYBOT_PUSH:-1}" = 1 ]; then  # a one-node Swarm can run them unpushed
  $DOCKER push -q "$REGISTRY/deploybot/deploybot:$TAG" >/dev/null
  $DOCKER push -q "$REGISTRY/deploybot/postgres:15" >/dev/null
fi
echo "$REGISTRY/deploybot/deploybot:$TAG"
