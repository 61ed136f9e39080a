"""Webhook benchmark: how fast a provider gets its answer, and how soon the deploy starts.

Starts `deploybot serve` (SQLite, embedded runner) and a `git daemon` serving a repository
of `--files` files, configures a GitHub hook, then:

1. sends `--deliveries` signed push deliveries (distinct delivery ids and commits, one after
   another) and times each request to its 202: p50, p99, max. The answer never waits for
   git, so the repository's size must not matter (compare `--files 10` and `--files 5000`);
2. sends `--starts` more, one at a time, and times each 202 to its deployment's
   IN_PROGRESS (the deployment's `startedAt`, written by the runner when it claims it;
   same clock). These deploys fail in the fetch step (the pushed sha is not in the
   repository), which keeps the Swarm out of it: the claim is what is measured.

A script that prints figures, not a test.

    PYTHONPATH=src .venv/bin/python bench/webhooks.py [--deliveries 200] [--starts 20]
        [--files 2000] [--no-runner]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import server_env  # noqa: E402
from tests.gitserver import GitServer  # noqa: E402
from tests.servers import Client, ServerProcess  # noqa: E402

REPOSITORY = "bench/hello"
CREATE = """mutation($input: CreateWebhookInput!) { createWebhook(input: $input) {
  secret userErrors { message } webhook { path } } }"""
STATE = "query($id: ID!) { deployment(id: $id) { state startedAt } }"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def push_body(sha: str) -> bytes:
    payload = json.loads((ROOT / "tests/webhooks/payloads/github-push.json").read_text())
    payload["after"] = sha
    payload["head_commit"]["id"] = sha
    payload["repository"]["full_name"] = REPOSITORY
    return json.dumps(payload).encode()


def signed(secret: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "X-Hub-Signature-256": "sha256="
        + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{name:<28} n={len(ms):<4} p50={statistics.median(ms):7.1f} ms"
        f"  p99={percentile(ms, 0.99):7.1f} ms  max={max(ms):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--files", type=int, default=2000, help="files in the repository")
    parser.add_argument(
        "--no-runner",
        action="store_true",
        help="phase 1 only, on a server without runner: the webhook path alone",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        git = GitServer(tmp / "git")
        git.start()
        git.create_repo("hello")
        files = {f"src/file{i}.txt": f"{i}\n" * 50 for i in range(args.files)}
        git.commit("hello", {"Dockerfile": "FROM scratch\n", **files})
        extra = ("--no-runner",) if args.no_runner else ()
        server = ServerProcess(server_env(tmp, DEPLOYBOT_RUNNER_POLL_INTERVAL="1"), tmp, *extra)
        client = Client(server.url)
        try:
            made = client.query(
                CREATE,
                {
                    "input": {
                        "provider": "GITHUB",
                        "repository": REPOSITORY,
                        "application": "bench-hello",
                        "repositoryUrl": git.url("hello"),
                        "branches": ["main"],
                    }
                },
            )["createWebhook"]
            secret, path = made["secret"], made["webhook"]["path"]
            # A provider's client: request in one segment (TCP_NODELAY), so the figure is the
            # server's time and not Nagle's algorithm meeting the server's delayed ACK.
            nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            provider = httpx.Client(
                base_url=server.url, transport=httpx.HTTPTransport(socket_options=nodelay)
            )
            answers: list[float] = []
            cpu_before = cpu_seconds(server.proc.pid)
            for _ in range(args.deliveries):
                body = push_body(uuid.uuid4().hex + uuid.uuid4().hex[:8])
                headers = signed(secret, body)
                started = time.perf_counter()
                response = provider.post(path, content=body, headers=headers)
                answers.append(time.perf_counter() - started)
                assert response.status_code == 202, response.text
            cpu = (cpu_seconds(server.proc.pid) - cpu_before) / args.deliveries
            if args.no_runner:
                print(f"repository: {args.files} files; SQLite; no runner; load {load()}")
                report("request -> 202", answers)
                print(f"server CPU per delivery (utime+stime): {cpu * 1000:.1f} ms")
                return
            # Let the runner work off what the first phase queued (newer ones cancel older).
            time.sleep(3)
            starts: list[float] = []
            from_request: list[float] = []
            for _ in range(args.starts):
                body = push_body(uuid.uuid4().hex + uuid.uuid4().hex[:8])
                sent = time.time()
                response = provider.post(path, content=body, headers=signed(secret, body))
                answered = time.time()
                deployment = response.json()["deployment"]["id"]
                while True:
                    found = client.query(STATE, {"id": deployment})["deployment"]
                    if found["state"] not in ("QUEUED", "IN_PROGRESS"):
                        break
                    time.sleep(0.02)
                began = datetime.fromisoformat(found["startedAt"]).timestamp()
                starts.append(began - answered)
                from_request.append(began - sent)
            print(f"repository: {args.files} files; SQLite; embedded runner; load {load()}")
            report("request -> 202", answers)
            report("request -> IN_PROGRESS", from_request)
            report("202 -> IN_PROGRESS", starts)
            print(f"server CPU per delivery in phase 1, runner included: {cpu * 1000:.1f} ms")
            print("(negative: the runner had claimed it before the 202 reached the client)")
        finally:
            client.close()
            server.stop()
            git.stop()


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time: what decides under a shared machine's noise."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
