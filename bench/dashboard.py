"""Dashboard benchmark: first paint of the deployments list with 10,000 deployments.

Seeds 10,000 deployments into an embedded SQLite database (the default of `deploybot
serve`), starts `deploybot serve --no-runner` on it, opens `/` in Debian's headless
chromium (Playwright) and prints, over several cold page loads, the browser's first
contentful paint and the time until the list's first rows are on screen. Target: under 1 s.

    .venv/bin/python bench/dashboard.py [--rows 10000] [--loads 7]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.browser import CHROMIUM, FLAGS  # noqa: E402
from tests.servers import free_port  # noqa: E402

TOKEN = "dbt_" + secrets.token_urlsafe(32)
STATES = ["SUCCESS", "FAILURE", "ERROR", "INACTIVE", "SUCCESS", "ROLLED_BACK", "CANCELLED"]


def seed(db: Path, rows: int) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "deploybot",
            "migrate",
            "--database-url",
            f"sqlite+aiosqlite:///{db}",
        ],
        check=True,
        capture_output=True,
    )
    rng = random.Random(7)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    columns = (
        "environment, application, repository_url, ref, commit_sha, version, strategy, state,"
        ' trigger, "references", created_at, updated_at, started_at, finished_at'
    )
    values = []
    for i in range(rows):
        app = f"app-{rng.randrange(50)}"
        created = t0 + timedelta(seconds=60 * i)
        values.append(
            ("local", app, f"git://git.example/{app}.git", "main", f"{rng.getrandbits(160):040x}",
             f"1.{i // 1000}.{i % 1000}", "ROLLING", STATES[rng.randrange(len(STATES))], "API",
             "[]", created.isoformat(" "), created.isoformat(" "),
             created.isoformat(" "), (created + timedelta(seconds=40)).isoformat(" "))
        )  # fmt: skip
    with sqlite3.connect(db) as conn:
        conn.executemany(
            f"INSERT INTO deployment ({columns}) VALUES ({', '.join('?' * 14)})", values
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="deploybot-dash-bench-"))
    db = tmp / "deploybot.db"
    seed(db, args.rows)
    port = free_port()
    env = {
        **os.environ,
        "DEPLOYBOT_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "DEPLOYBOT_ENVIRONMENT": "local",
        "DEPLOYBOT_WORK_DIR": str(tmp / "work"),
        "DEPLOYBOT_ADMIN_TOKEN": TOKEN,
    }
    log = (tmp / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "deploybot", "serve", "--no-runner", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        token = TOKEN
        paints, lists = [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            for _ in range(args.loads):
                context = browser.new_context()
                if token:
                    context.add_init_script(f"localStorage.setItem('deploybot.token', {token!r})")
                page = context.new_page()
                started = time.perf_counter()
                page.goto(f"{url}/")
                page.wait_for_selector("#deployments tr")
                lists.append((time.perf_counter() - started) * 1000)
                paint = page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
                )
                paints.append(float(paint))
                context.close()
            browser.close()
        count = httpx.post(
            f"{url}/graphql",
            json={"query": "{ deployments { totalCount } }"},
            headers={"Authorization": f"Bearer {token}"} if token else {},
        ).json()
        print(f"deployments in the database: {count['data']['deployments']['totalCount']:,}")
        for label, times in (("first contentful paint", paints), ("list rows on screen", lists)):
            print(f"{label:24} median {statistics.median(times):6.0f} ms  max {max(times):6.0f} ms")
        print(f"(cold page loads: {args.loads}; target: under 1000 ms)")
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    main()
