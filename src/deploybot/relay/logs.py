"""The relay's `/deployments/{id}/logs` (and `?follow=true`): routed by the global ID to its
environment, answered as an instance answers it (`web.logs.log_response`), permissions
decided by that environment's instance for the forwarded caller."""

from __future__ import annotations

from typing import cast

from starlette.requests import Request
from starlette.responses import Response

from deploybot.backend.protocol import Backend
from deploybot.ids import InvalidId
from deploybot.inputs import DeploymentRef
from deploybot.relay.backend import RelayBackend
from deploybot.web.auth import NotAuthenticated, principal_of
from deploybot.web.errors import error_response
from deploybot.web.logs import log_response


async def relay_raw_logs(request: Request) -> Response:
    principal = principal_of(request)
    if principal is None:
        raise NotAuthenticated()
    text = request.path_params["id"]
    try:
        ref = DeploymentRef.parse(text)
    except InvalidId as exc:
        return error_response(400, "INVALID_INPUT", str(exc))
    if ref is None:
        return error_response(404, "DEPLOYMENT_NOT_FOUND", f"deployment {text} not found")
    relay: RelayBackend = request.app.state.relay
    return await log_response(request, ref, cast(Backend, relay.bound(principal)))
