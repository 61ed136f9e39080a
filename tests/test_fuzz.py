"""A short sample of the GraphQL fuzzing (`scripts/fuzz_graphql.py` runs thousands): valid
and invalid documents generated from the schema, against a server on SQLite and one on
PostgreSQL, answer with typed errors only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis_graphql import Mode

from tests.conftest import server_env
from tests.fuzzing import fuzz
from tests.servers import ServerProcess


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_server(
    request: pytest.FixtureRequest, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    overrides = {"DEPLOYBOT_DATABASE_URL": postgres_url} if request.param == "postgresql" else {}
    server = ServerProcess(server_env(tmp, **overrides), tmp, "--no-runner")
    yield server
    server.stop()


@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE], ids=["valid", "invalid"])
def test_generated_documents_get_typed_answers(fuzz_server: ServerProcess, mode: Mode) -> None:
    findings = fuzz(fuzz_server.url, examples=150, mode=mode, seed=1)
    assert findings.sent >= 100
    assert findings.problems == [], "\n\n".join(f"{d}\n-> {p}" for d, p in findings.problems[:5])
