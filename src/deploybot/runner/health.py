"""The health URL a deployment gives, polled by the runner after the rollout.

The runner runs beside the Swarm manager and reaches host-mode published ports
on 127.0.0.1. An absolute `http(s)://` URL is fetched as written; a path
(`/healthz`) is fetched from `http://127.0.0.1:<port><path>`, where the port is
the first published port of the deployment's service (an image deploy's
`service`), else of the first service of the stack (by name) that publishes one.
A 2xx or 3xx answer within `timeout` is healthy; anything else is retried
`interval` seconds later, `retries` tries in all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from deploybot.inputs import HealthCheck


class HealthCheckFailed(Exception):
    pass


def published_port(spec: dict[str, Any]) -> int | None:
    for port in (spec.get("EndpointSpec") or {}).get("Ports") or []:
        if port.get("PublishedPort"):
            return int(port["PublishedPort"])
    return None


def resolve_url(url: str, specs: dict[str, dict[str, Any]], service: str | None) -> str:
    """The URL to fetch: absolute as given, a path on the stack's published port."""
    if not url.startswith("/"):
        return url
    order = ([service] if service in specs else []) + sorted(specs)
    for name in order:
        port = published_port(specs[name])
        if port is not None:
            return f"http://127.0.0.1:{port}{url}"
    raise HealthCheckFailed(f"health check path {url}: no service of the stack publishes a port")


async def poll(url: str, check: HealthCheck, say: Callable[[str], None]) -> str:
    """Fetch until healthy; returns what answered, raises HealthCheckFailed after the retries."""
    last = ""
    async with httpx.AsyncClient(timeout=check.timeout, follow_redirects=False) as client:
        for attempt in range(1, check.retries + 1):
            try:
                response = await client.get(url)
                last = f"HTTP {response.status_code}"
                if response.status_code < 400:
                    say(f"health {url}: {last} (try {attempt}/{check.retries})")
                    return last
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            say(f"health {url}: {last} (try {attempt}/{check.retries})")
            if attempt < check.retries:
                await asyncio.sleep(check.interval)
    raise HealthCheckFailed(f"{url} not healthy after {check.retries} tries: {last}")
