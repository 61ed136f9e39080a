"""Instructions per request: a server run under Callgrind and sent a fixed number of requests.

Why: on this project's 2-core machines wrk, PostgreSQL and the server share the cores, and
a server's requests/s vary by about ±25 % from one 10 s run to the next, so no number of
wrk rounds that fits in a sitting can show a 5 % difference. Callgrind counts the machine
instructions the server's process executes; the count for the same code and requests is
the same from run to run (within 0.3 % here) whatever else the machine is doing. For a
single-process server that spends its time on the CPU, requests/s is the inverse of the
CPU work per request, so the ratio of two counts stands in for the ratio of two wrk
figures, without the noise.

What it leaves out: the kernel's share (syscalls) and other processes (PostgreSQL's work
is compared apart, from `pg_stat_database`). And the server runs about 50 times slower
under Callgrind, so whatever a server does every few seconds happens every few requests
instead of every few thousand: deploybot's 5 s token cache expires every ~15 requests and
its lookup is counted in, which makes the figure an upper bound on what authentication
costs.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import httpx

CONCURRENCY = 8
"""Requests in flight: enough that the server always has work queued, as under wrk."""
WARMUP = 16
"""Requests before counting (first-use imports, caches, pool connections)."""
START_PATIENCE = 1200.0
"""Seconds a server may take to start: deploybot's imports take 2-3 minutes under Callgrind."""


def under_callgrind(cmd: list[str], out_dir: Path) -> list[str]:
    """`cmd` run by Callgrind, which counts from the start; `zero` sets the count aside."""
    return [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_dir}/callgrind.%p",
        *cmd,
    ]


def _control(*args: str) -> str:
    return subprocess.run(
        ["callgrind_control", *args], capture_output=True, text=True, check=True, timeout=120
    ).stdout


def zero(pid: int) -> None:
    _control("-z", str(pid))


def instructions(pid: int) -> int:
    """Instructions the process executed since the last `zero`, all threads together."""
    out = _control("-e", "Ir", str(pid))
    counts = re.findall(r"^\s*Th\s+\d+\s+([\d,]+)\s*$", out, re.M)
    if not counts:
        raise RuntimeError(f"callgrind_control answered no counts for {pid}: {out}")
    return sum(int(count.replace(",", "")) for count in counts)


async def drive(url: str, body: dict[str, object], headers: dict[str, str], requests: int) -> None:
    """`requests` POSTs of `body`, CONCURRENCY at a time; each must answer data, no errors."""
    left = requests

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            answer = await client.post(url, json=body, headers=headers)
            payload = answer.json()
            if answer.status_code != 200 or payload.get("errors"):
                raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:300]}")

    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))


def per_request(
    pid: int, url: str, body: dict[str, object], headers: dict[str, str], requests: int
) -> float:
    """Instructions per request of the server `pid` answering `body`."""
    asyncio.run(drive(url, body, headers, WARMUP))
    zero(pid)
    asyncio.run(drive(url, body, headers, requests))
    return instructions(pid) / requests
