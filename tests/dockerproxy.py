"""A Unix-socket proxy to the Docker socket, run as its own process: the tests point a
deploybot at it and stop it to make Docker vanish for that deploybot only (a real fault
of its endpoint: refused connections, cut streams) while the shared daemon runs on.

    python -m tests.dockerproxy LISTEN_PATH [TARGET_PATH]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(listen: str, target: str) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            docker_r, docker_w = await asyncio.open_unix_connection(target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, docker_w), _pipe(docker_r, client_w))

    with contextlib.suppress(FileNotFoundError):
        os.unlink(listen)
    server = await asyncio.start_unix_server(handle, listen)
    async with server:
        await server.serve_forever()


class DockerProxy:
    """The proxy process; `stop()` kills it (every connection drops), `start()` again."""

    def __init__(self, listen: Path, target: str = "/var/run/docker.sock") -> None:
        self.listen = listen
        self.target = target
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.listen}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.dockerproxy", str(self.listen), self.target]
        )
        deadline = time.monotonic() + 10
        while not self.listen.exists():
            assert time.monotonic() < deadline, "the Docker proxy did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(FileNotFoundError):
            self.listen.unlink()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "/var/run/docker.sock"))
