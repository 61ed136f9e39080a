"""The webhook tests' servers: the resolver tests' per-test one (for the tests run on both
databases), and one shared by the package (no runner; notifications retry fast)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import server_env
from tests.resolvers.conftest import api
from tests.servers import Client, ServerProcess

__all__ = ["api", "hooks_api"]


@pytest.fixture(scope="package")
def hooks_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """`deploybot serve --no-runner` on SQLite; each test makes its own hooks and apps."""
    tmp = tmp_path_factory.mktemp("hooks-api")
    env = server_env(
        tmp,
        DEPLOYBOT_NOTIFY_BACKOFF="0.2",
        DEPLOYBOT_NOTIFY_TIMEOUT="0.5",
        DEPLOYBOT_NOTIFY_ATTEMPTS="5",
    )
    server = ServerProcess(env, tmp, "--no-runner")
    client = Client(server.url)
    yield client
    client.close()
    server.stop()
