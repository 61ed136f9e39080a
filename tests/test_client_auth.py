"""The client's exit code 8 when the server (or an authenticating proxy in front of it)
refuses the token: a real HTTP server answering 401 and 403 as such a proxy does."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Refusing(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_POST(self) -> None:
        token = self.headers.get("Authorization")
        self.seen.append(token)
        status = 401 if token is None else 403
        body = b'{"error": {"code": "FORBIDDEN", "message": "token refused"}}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_refused_tokens_exit_8(refusing_server: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEPLOYBOT_TOKEN"}
    run = [sys.executable, "-m", "deploybot"]
    without = subprocess.run(
        [*run, "history", "--url", refusing_server], capture_output=True, text=True,
        env=env, timeout=120, check=False,
    )  # fmt: skip
    assert without.returncode == 8
    assert "authentication failed: 401: FORBIDDEN: token refused" in without.stderr
    with_token = subprocess.run(
        [*run, "deploy", "--image", "x:1", "--wait"], capture_output=True, text=True,
        env={**env, "DEPLOYBOT_URL": refusing_server, "DEPLOYBOT_TOKEN": "s3cret"},
        timeout=120, check=False,
    )  # fmt: skip
    assert with_token.returncode == 8 and "403" in with_token.stderr
    assert _Refusing.seen == [None, "Bearer s3cret"]
    assert "s3cret" not in with_token.stderr + with_token.stdout
