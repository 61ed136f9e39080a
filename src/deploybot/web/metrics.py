"""`/metrics` in Prometheus' text format.

Process figures come from `deploybot.metrics`; the deployment gauges (by state, the queue,
the running ones) are read from the database through the backend at each scrape, so every
API replica reports the same figures for the environment.

Access is `DEPLOYBOT_METRICS_ACCESS`: `open` (anyone, the default) or `token` (a caller
that may read the environment; `web/auth.py` turned its token into the caller).
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from deploybot.access import LOCAL_USER
from deploybot.backend.local import LocalBackend
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.metrics import DEPLOYMENTS, QUEUE_DEPTH, RUNNING
from deploybot.web.auth import bound_backend
from deploybot.web.errors import error_response, expected_failure
from deploybot.web.requests import instance_of


def metrics_backend(request: Request) -> LocalBackend:
    """Whose figures these are: with `metrics_access=open` anyone reads them as the instance;
    with `token` the caller's token must read the environment (401 without a valid one)."""
    instance = instance_of(request)
    if instance.settings.metrics_access == "open":
        return instance.backend_for(LOCAL_USER)
    return bound_backend(request)


async def metrics(request: Request) -> Response:
    instance = instance_of(request)
    try:
        tallies = await metrics_backend(request).deployment_tallies()
    except DeploybotError as exc:
        if exc.code is ErrorCode.FORBIDDEN:
            return error_response(403, exc.code.value, exc.message)
        return expected_failure(exc)
    by_state: Counter[str] = Counter()
    DEPLOYMENTS.clear()
    for tally in tallies:
        DEPLOYMENTS.labels(tally.environment, tally.application, tally.state, tally.trigger).set(
            tally.count
        )
        by_state[tally.state] += tally.count
    environment = instance.settings.environment
    QUEUE_DEPTH.labels(environment).set(by_state["QUEUED"])
    RUNNING.labels(environment).set(by_state["IN_PROGRESS"])
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
