"""Real component helpers for the tests: a running deploybot server and a GraphQL client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ADMIN_TOKEN = "dbt_test-admin-token-0123456789abcdefghijklmnopqrstuv"
"""The servers' fixed admin token (`DEPLOYBOT_ADMIN_TOKEN` in `server_env`)."""
AUTH_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WS_INIT_PAYLOAD = {"authorization": f"Bearer {ADMIN_TOKEN}"}
"""`connection_init`'s payload that authenticates a WebSocket as the admin."""


def auth_headers(token: str | None = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class GraphQLError(AssertionError):
    pass


class Client:
    """A GraphQL-over-HTTP client as a CI job would use one (the admin token by default)."""

    def __init__(self, base_url: str, token: str | None = ADMIN_TOKEN) -> None:
        self.base_url = base_url
        self.token = token
        self.http = httpx.Client(base_url=base_url, timeout=60, headers=auth_headers(token))

    def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The whole response (data and errors)."""
        response = self.http.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def query(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The data of a query that must not fail."""
        body = self.execute(query, variables)
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        data: dict[str, Any] = body["data"]
        return data

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ServerProcess:
    """`deploybot serve` started the way a user starts it, on a free port."""

    def __init__(
        self, env: Mapping[str, str], workdir: Path, *args: str, wait: bool = True
    ) -> None:
        """`wait=False` returns once the process is started; `ready()` then waits for it, so
        that servers over different databases start side by side (on both CPUs)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / f"server-{self.port}.log"
        self._env = {**os.environ, **env}
        self._args = args
        self._log = self.log_path.open("wb")
        self._start(wait)

    def _start(self, wait: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploybot", "serve", "--port", str(self.port), *self._args],
            env=self._env,
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.ready()

    def ready(self) -> None:
        """Until it answers /healthz."""
        self._wait()

    def restart(self) -> None:
        """Start it again after `stop`, on the same port and database (a restarted host)."""
        self._log = self.log_path.open("ab")
        self._start()

    def _wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
