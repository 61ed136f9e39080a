"""What the deploy policy costs a deploy: reading the policy in force (one primary-key read,
SQLite and, when reachable, PostgreSQL) and checking a stack's claims against it.

Run: `PYTHONPATH=src python -m bench.policy` (prints figures; asserts nothing).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from deploybot.config import Settings
from deploybot.core.policy import PolicyChange, stack_violations
from deploybot.core.policy_store import current_policy, update_policy
from deploybot.db import migrate
from deploybot.db.engine import Database
from deploybot.runner.stack import parse_stack_file
from deploybot.runner.stack.claims import stack_claims

STACK = """
services:
  web:
    image: 127.0.0.1:5000/shop/web:1
    volumes: ["/srv/data/web:/data", "cache:/cache"]
    ports: ["18080:80"]
    cap_add: [NET_BIND_SERVICE]
    sysctls: {net.core.somaxconn: 1024}
  worker:
    build: .
    deploy: {replicas: 4}
volumes:
  cache: {}
"""
ROUNDS = 2000
POSTGRES_ADMIN_URL = os.environ.get(
    "DEPLOYBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:55432/postgres"
)


async def per_read(url: str, settings: Settings) -> float:
    """Microseconds per `current_policy` on a migrated database holding an edited policy."""
    db = Database(url)
    try:
        await migrate.upgrade(db)
        await update_policy(db, settings, PolicyChange(allow_devices=True), by="bench")
        for _ in range(50):
            await current_policy(db, settings)
        start = time.perf_counter()
        for _ in range(ROUNDS):
            await current_policy(db, settings)
        return (time.perf_counter() - start) / ROUNDS * 1e6
    finally:
        await db.dispose()


async def drop_database(url: str) -> None:
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"'))
    finally:
        await admin.dispose()


async def postgres_url() -> str | None:
    name = f"deploybot_bench_policy_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OSError:
        return None
    finally:
        await admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def main() -> None:
    settings = Settings(
        policy_bind_mount_prefixes="/srv/data", policy_capabilities="ALL", policy_sysctls="net.*"
    )
    stack = parse_stack_file(STACK)
    policy = settings.deploy_policy
    start = time.perf_counter()
    for _ in range(ROUNDS):
        errors = stack_violations(policy, stack.filename, stack_claims(stack))
    check = (time.perf_counter() - start) / ROUNDS * 1e6
    print(f"claims + check of a 2-service stack: {check:.1f} µs ({len(errors)} violations)")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await per_read(f"sqlite+aiosqlite:///{tmp}/bench.db", settings)
    print(f"reading the policy in force, SQLite: {sqlite:.0f} µs per deploy")
    url = await postgres_url()
    if url is None:
        print("PostgreSQL not reachable: skipped")
    else:
        try:
            figure = await per_read(url, settings)
        finally:
            await drop_database(url)
        print(f"reading the policy in force, PostgreSQL: {figure:.0f} µs per deploy")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    asyncio.run(main())
