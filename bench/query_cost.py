"""How long refusing a too-costly GraphQL request takes (the issue asks < 50 ms for its
2,000-alias request): in this process through the schema, and through a running
`deploybot serve` over HTTP; median and p95 of each, and the CPU time spent (the wall
clock of a shared machine measures its neighbours too). A script that prints figures.

    PYTHONPATH=src .venv/bin/python bench/query_cost.py [--rounds 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import ServerProcess  # noqa: E402

from deploybot.schema import schema  # noqa: E402

ALIAS = "deployments(first: 100) { totalCount nodes { logs(first: 100) { totalCount } } }"
REQUESTS = {
    "the issue's 2,000 aliases": "{ " + " ".join(f"a{i}: {ALIAS}" for i in range(2000)) + " }",
    "101 aliases (alias limit)": "{ " + " ".join(f"a{i}: __typename" for i in range(101)) + " }",
    "depth 14 (depth limit)": '{ deployment(id: "1") { '
    + "rollbackOf { " * 12
    + "id"
    + " }" * 13
    + " }",
    "100 x 1000 logs (node limit)": (
        "{ deployments(first: 100) { nodes { logs(first: 1000) { totalCount } } } }"
    ),
}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (the wall clock on a shared machine
    mostly measures the neighbours)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered):6.2f} ms, p95 {p95:6.2f} ms"


async def in_process(rounds: int) -> None:
    for label, query in REQUESTS.items():
        samples = []
        cpu = time.process_time()
        for _ in range(rounds):
            started = time.perf_counter()
            result = await schema.execute(query)
            samples.append((time.perf_counter() - started) * 1000)
            assert result.errors and result.errors[0].extensions, result
            assert result.errors[0].extensions["code"] == "QUERY_TOO_COMPLEX"
        cpu_ms = (time.process_time() - cpu) / rounds * 1000
        print(f"  {label:<30} {_summary(samples)}, CPU {cpu_ms:5.2f} ms")


def over_http(rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    env = {
        "DEPLOYBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/deploybot.db",
        "DEPLOYBOT_ENVIRONMENT": "bench",
        "DEPLOYBOT_WORK_DIR": str(tmp / "work"),
        "PYTHONPATH": str(ROOT / "src"),
    }
    server = ServerProcess(env, tmp, "--no-runner", "--log-level", "warning")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for label, query in REQUESTS.items():
                body = {"query": query}
                samples = []
                cpu = _cpu_seconds(server.proc.pid)
                for _ in range(rounds):
                    started = time.perf_counter()
                    response = http.post("/graphql", json=body)
                    samples.append((time.perf_counter() - started) * 1000)
                    code = response.json()["errors"][0]["extensions"]["code"]
                    assert code == "QUERY_TOO_COMPLEX", response.text
                cpu_ms = (_cpu_seconds(server.proc.pid) - cpu) / rounds * 1000
                size = len(response.request.content) // 1024
                print(
                    f"  {label:<30} {_summary(samples)}, server CPU {cpu_ms:5.2f} ms"
                    f"  ({size} KiB body)"
                )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    print("refused in process (schema.execute):")
    asyncio.run(in_process(args.rounds))
    print("refused through deploybot serve (HTTP round trip, one client):")
    over_http(args.rounds)


if __name__ == "__main__":
    main()
