#!/usr/bin/env bash
# The whole test suite, from a fresh machine: prepares the machine (Docker,
# Swarm, registry, base image, PostgreSQL, .venv), then lint, types and pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/prepare-machine.sh
.venv/bin/ruff check src tests bench alembic
.venv/bin/ruff format --check src tests bench alembic
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
