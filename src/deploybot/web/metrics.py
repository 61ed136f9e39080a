"""`/metrics` in Prometheus' text format.

Process figures come from `deploybot.metrics`; the deployment gauges (by state, the queue,
the running ones) are read from the database through the backend at each scrape, so every
API replica reports the same figures for the environment.

Access is `DEPLOYBOT_METRICS_ACCESS`: `open` (anyone, the default) or `token` (a caller
that may read the environment). `metrics_principal` is the one place a request's
credentials become the scraper's principal.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from deploybot.access import ANONYMOUS, LOCAL_USER, Principal
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.metrics import DEPLOYMENTS, QUEUE_DEPTH, RUNNING
from deploybot.web.errors import error_response, expected_failure
from deploybot.web.requests import instance_of


def metrics_principal(request: Request) -> Principal:
    """Who is scraping: the hook token authentication plugs into.

    Until tokens are checked by the transports every caller is anonymous here, so with
    `metrics_access=token` nobody may read; with `open` the scrape reads as the instance.
    """
    if instance_of(request).settings.metrics_access == "open":
        return LOCAL_USER
    return ANONYMOUS


async def metrics(request: Request) -> Response:
    instance = instance_of(request)
    backend = instance.backend_for(metrics_principal(request))
    try:
        tallies = await backend.deployment_tallies()
    except DeploybotError as exc:
        if exc.code is ErrorCode.FORBIDDEN:
            return error_response(
                401 if not request.headers.get("authorization") else 403,
                exc.code.value,
                exc.message,
            )
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
