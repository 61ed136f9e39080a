"""One fixture per real component: database, Swarm, registry, git server, running server.

The components are installed and started by `scripts/prepare-machine.sh`; a
fixture whose component is missing fails with what to run, it never fakes it.
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import deploybot
from deploybot.db import migrate
from deploybot.db.engine import Database
from deploybot.runner.swarm import Swarm
from tests import browser
from tests.gitserver import GitServer
from tests.pgcluster import PgCluster
from tests.servers import ADMIN_TOKEN, Client, ServerProcess

DOCKER = "/usr/bin/docker"
REGISTRY = os.environ.get("DEPLOYBOT_TEST_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("DEPLOYBOT_BASE_IMAGE", "deploybot/busybox:latest")
POSTGRES_ADMIN_URL = os.environ.get(
    "DEPLOYBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:55432/postgres"
)
PREPARE = "run `bash scripts/prepare-machine.sh` first"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Write deploybot's bytecode once: the suite starts a hundred-odd `deploybot` processes,
    and where PYTHONDONTWRITEBYTECODE is set (CI's machines) each one would otherwise
    compile the package's 180 modules from source again (about 0.7 s of CPU per process)."""
    compileall.compile_dir(Path(deploybot.__file__).parent, quiet=1)


def docker(*args: str) -> str:
    return subprocess.run(
        [DOCKER, *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout


@pytest.fixture(scope="session")
def swarm() -> str:
    """The local Swarm manager's Docker socket (a real single-node Swarm)."""
    try:
        state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"Docker is not running ({exc}); {PREPARE}")
    if state != "active":
        pytest.fail(f"Docker is not a Swarm manager (state {state!r}); {PREPARE}")
    try:
        docker("image", "inspect", BASE_IMAGE)
    except subprocess.CalledProcessError:
        pytest.fail(f"base image {BASE_IMAGE} is missing; {PREPARE}")
    return "unix:///var/run/docker.sock"


@pytest.fixture(scope="session")
async def swarm_client(swarm: str) -> AsyncIterator[Swarm]:
    """The Docker client of the local Swarm, shared like the one of a deploybot process."""
    client = Swarm(swarm)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def registry() -> str:
    """The local registry (no auth) that built images are pushed to."""
    try:
        httpx.get(f"http://{REGISTRY}/v2/", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"registry {REGISTRY} is not answering ({exc}); {PREPARE}")
    return REGISTRY


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    server = GitServer(tmp_path_factory.mktemp("git-daemon"))
    server.start()
    yield server
    server.stop()


async def _create_pg_database() -> str:
    name = f"deploybot_test_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not answering at {POSTGRES_ADMIN_URL} ({exc}); {PREPARE}")
    finally:
        await admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the kind the test is parametrised with (sqlite or postgresql)."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/deploybot.db"
    else:
        yield await _create_pg_database()


@pytest.fixture
async def database(empty_database_url: str) -> AsyncIterator[Database]:
    """A migrated database (SQLite file or a fresh PostgreSQL database)."""
    db = Database(empty_database_url)
    await migrate.upgrade(db)
    yield db
    await db.dispose()


both_databases = pytest.mark.parametrize(
    "empty_database_url", ["sqlite", "postgresql"], indirect=True
)


def server_env(tmp: Path, **overrides: str) -> dict[str, str]:
    env = {
        "DEPLOYBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/deploybot.db",
        "DEPLOYBOT_ENVIRONMENT": "test",
        "DEPLOYBOT_WORK_DIR": str(tmp / "work"),
        "DEPLOYBOT_CONVERGE_TIMEOUT": "90",
        "DEPLOYBOT_RUNNER_POLL_INTERVAL": "0.5",
        # A task counts as steady after 1 s running (2 s by default): a crash loop is still
        # caught (the failing test tasks exit or turn unhealthy well within it), and each
        # converge of the suite's rollouts is a second shorter.
        "DEPLOYBOT_CONVERGE_STABLE_SECONDS": "1",
        "DEPLOYBOT_ADMIN_TOKEN": ADMIN_TOKEN,
        # The tests make many requests quickly; tests of the limits turn them back on.
        "DEPLOYBOT_RATE_LIMIT_ENABLED": "false",
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="module")
def deploy_server(
    swarm: str, registry: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`deploybot serve` with its embedded runner, SQLite, the local Swarm and registry."""
    tmp = tmp_path_factory.mktemp("server")
    server = ServerProcess(
        server_env(tmp, DEPLOYBOT_DOCKER_HOST=swarm, DEPLOYBOT_REGISTRY=registry), tmp
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(deploy_server: ServerProcess) -> Iterator[Client]:
    c = Client(deploy_server.url)
    yield c
    c.close()


def remove_stack(namespace: str) -> None:
    """Remove a test stack's services and networks from the Swarm."""
    ids = docker(
        "service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={namespace}"
    ).split()
    if ids:
        docker("service", "rm", *ids)
    nets = docker(
        "network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={namespace}"
    ).split()
    for net in nets:
        subprocess.run([DOCKER, "network", "rm", net], capture_output=True, timeout=60)


def service_inspect(name: str) -> dict[str, object]:
    data: list[dict[str, object]] = json.loads(docker("service", "inspect", name))
    return data[0]


@pytest.fixture(scope="module")
async def postgres_url() -> str:
    """A fresh, empty PostgreSQL database for the module's server processes."""
    return await _create_pg_database()


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PgCluster]:
    """A running PostgreSQL cluster of the module's own, which its tests may restart."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="module")
def pg_api(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`deploybot serve --no-runner` on PostgreSQL: its events come from other processes."""
    tmp = tmp_path_factory.mktemp("pg-api")
    server = ServerProcess(server_env(tmp, DEPLOYBOT_DATABASE_URL=postgres_url), tmp, "--no-runner")
    yield server
    server.stop()


def ws_url(server: ServerProcess) -> str:
    return server.url.replace("http://", "ws://") + "/graphql"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's headless chromium, driven by Playwright. Module-scoped: Playwright's sync
    API keeps an event loop running while it is open, which async tests cannot share."""
    yield from browser.launch()
