#!/usr/bin/env bash
# Run deploybot on this machine: prepares it (Docker + Swarm, local registry,
# .venv) and serves GraphQL on http://127.0.0.1:8000/graphql with an embedded
# SQLite database and runner. Extra arguments go to `deploybot serve`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/prepare-machine.sh
export DEPLOYBOT_REGISTRY=${DEPLOYBOT_REGISTRY-127.0.0.1:5000}
exec .venv/bin/deploybot serve "$@"
