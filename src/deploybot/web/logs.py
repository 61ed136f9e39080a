"""`/deployments/{id}/logs`: a deployment's raw log as plain text; `?follow=true` streams
it live until the deployment ends (`curl -N` in a CI job)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from deploybot.backend.protocol import Backend
from deploybot.errors import DeploybotError
from deploybot.ids import InvalidId, parse_key
from deploybot.inputs import DeploymentRef
from deploybot.web.auth import bound_backend
from deploybot.web.errors import error_response, expected_failure

TEXT = "text/plain; charset=utf-8"


async def raw_logs(request: Request) -> Response:
    bound_backend(request)  # 401 before anything else is looked at
    try:
        ref = DeploymentRef(None, parse_key(request.path_params["id"], "deployment number"))
    except InvalidId as exc:
        return error_response(400, "INVALID_INPUT", str(exc))
    return await log_response(request, ref)


async def log_response(
    request: Request, ref: DeploymentRef, backend: Backend | None = None
) -> Response:
    """The raw log of `ref`, or (`?follow=true`) its live stream; from `backend` (the
    relay's), else from the caller's backend here."""
    follow = request.query_params.get("follow", "false").lower()
    if follow not in ("true", "false", "1", "0"):
        return error_response(400, "INVALID_INPUT", "follow must be true or false")
    backend = backend or bound_backend(request)
    try:
        if follow in ("false", "0"):
            return StreamingResponse(await backend.raw_log(ref), media_type=TEXT)
        text = await backend.follow_deployment_logs_text(ref)
    except DeploybotError as exc:
        return expected_failure(exc)
    return StreamingResponse(
        text, media_type=TEXT, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
