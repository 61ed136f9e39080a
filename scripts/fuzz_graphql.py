"""Fuzz deploybot's GraphQL API with a budget: documents generated from `schema.graphql`
(hypothesis-graphql; valid ones and ones with one schema violation) against a server on
SQLite and one on PostgreSQL, both started here. Prints what was sent and every finding
(a 5xx, a body that is not JSON, an error without `extensions.code` or saying "Internal
server error"); exits 1 when there is one.

    .venv/bin/python scripts/fuzz_graphql.py [--examples 10000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis_graphql import Mode  # noqa: E402
from tests.conftest import _create_pg_database, server_env  # noqa: E402
from tests.fuzzing import fuzz  # noqa: E402
from tests.servers import ServerProcess  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=10_000, help="documents per database")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    found = 0
    for kind in args.databases.split(","):
        tmp = Path(tempfile.mkdtemp(prefix=f"deploybot-fuzz-{kind}-"))
        overrides = {}
        if kind == "postgresql":
            overrides["DEPLOYBOT_DATABASE_URL"] = asyncio.run(_create_pg_database())
        server = ServerProcess(server_env(tmp, **overrides), tmp, "--no-runner")
        try:
            for mode, share in ((Mode.POSITIVE, 0.7), (Mode.NEGATIVE, 0.3)):
                started = time.monotonic()
                findings = fuzz(server.url, examples=int(args.examples * share), mode=mode)
                took = time.monotonic() - started
                label = f"{kind:10} {mode.name.lower():8}"
                print(f"{label} {findings.sent:6} documents in {took:5.0f}s,", end=" ")
                print(f"{len(findings.problems)} findings")
                for document, problem in findings.problems[:20]:
                    print(f"--- {problem}\n{document}\n")
                found += len(findings.problems)
        finally:
            server.stop()
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
