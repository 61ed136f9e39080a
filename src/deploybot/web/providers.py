"""Seed 000's provider-scoped routes, e.g. for GitHub:

- `GET /github/{owner}/{repo}/deployments`: the deployments GitHub's webhooks made for
  that repository, newest first (`?first=`, `?after=`; the next page is in `Link`);
- `GET /github/{owner}/{repo}/deployment/{id}`: one of them, with `original_request` (what
  the provider sent) and `original_mapped_request` (the deploy it became);
- `GET /github/{owner}/{repo}/deployment/{id}/logs`: its raw log (`?follow=true`: live);
- `POST /github/{owner}/{repo}/deploy`: the provider's payload, to that repository's hook
  (verified exactly as on `/hooks/github/{id}`).

Reading needs read access to the deployment's application and repository; a deployment of
another provider or repository answers as a missing one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deploybot.errors import DeploybotError
from deploybot.inputs import DeploymentRef, PageRequest
from deploybot.records import DeploymentRecord
from deploybot.web.auth import bound_backend
from deploybot.web.errors import error_response, expected_failure
from deploybot.web.hooks import receive_hook
from deploybot.web.logs import log_response
from deploybot.web.requests import base_url
from deploybot.webhooks import ProviderName

MAX_PAGE = 100


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _summary(record: DeploymentRecord, base: str, provider: str, repository: str) -> dict[str, Any]:
    url = f"{base}/{provider}/{repository}/deployment/{record.id}"
    return {
        "id": record.id,
        "environment": record.environment,
        "application": record.application,
        "repository_url": record.repository_url,
        "commit_sha": record.commit_sha,
        "ref": record.ref,
        "image": record.image,
        "version": record.version,
        "state": record.state.value,
        "actor": record.actor,
        "timestamp": _when(record.created_at),
        "finished_at": _when(record.finished_at),
        "url": url,
        "logs_url": f"{url}/logs",
    }


def _where(request: Request) -> tuple[str, str]:
    provider = request.url.path.split("/", 2)[1]
    return provider, f"{request.path_params['owner']}/{request.path_params['repo']}"


async def list_deployments(request: Request) -> Response:
    provider, repository = _where(request)
    raw_first = request.query_params.get("first", "30")
    if not raw_first.isdigit() or not 1 <= int(raw_first) <= MAX_PAGE:
        return error_response(400, "INVALID_INPUT", f"first must be 1..{MAX_PAGE}")
    page = PageRequest(first=int(raw_first), after=request.query_params.get("after"))
    backend = bound_backend(request)
    try:
        found = await backend.provider_deployments(provider, repository, page)
    except DeploybotError as exc:
        return expected_failure(exc)
    base = base_url(request)
    response = JSONResponse([_summary(e.node, base, provider, repository) for e in found.edges])
    if found.has_next and found.edges:
        after = found.edges[-1].cursor
        link = f"{base}{request.url.path}?first={raw_first}&after={after}"
        response.headers["Link"] = f'<{link}>; rel="next"'
    return response


async def _found(request: Request) -> DeploymentRecord | Response:
    provider, repository = _where(request)
    raw_id = request.path_params["id"]
    if not raw_id.isdigit():
        return error_response(400, "INVALID_INPUT", f"not a deployment number: {raw_id!r}")
    backend = bound_backend(request)
    try:
        record = await backend.provider_deployment(
            provider, repository, DeploymentRef(None, int(raw_id))
        )
    except DeploybotError as exc:
        return expected_failure(exc)
    if record is None:
        return error_response(
            404,
            "DEPLOYMENT_NOT_FOUND",
            f"no deployment {raw_id} of {provider} repository {repository}",
        )
    return record


async def get_deployment(request: Request) -> Response:
    found = await _found(request)
    if isinstance(found, Response):
        return found
    provider, repository = _where(request)
    body = _summary(found, base_url(request), provider, repository)
    original = found.original_request or {}
    body.update(
        original_request={"headers": original.get("headers"), "payload": original.get("payload")},
        original_mapped_request=found.mapped_request,
        error_code=found.error_code.value if found.error_code else None,
        error_message=found.error_message,
    )
    return JSONResponse(body)


async def deployment_logs(request: Request) -> Response:
    found = await _found(request)
    if isinstance(found, Response):
        return found
    return await log_response(request, DeploymentRef(found.environment, found.id))


async def deploy(request: Request) -> Response:
    provider, repository = _where(request)
    return await receive_hook(request, provider=provider, repository=repository)


def provider_routes() -> list[Route]:
    """The routes of every provider (one prefix each, so no other path is shadowed)."""
    routes = []
    for provider in ProviderName:
        base = f"/{provider.value}/{{owner}}/{{repo}}"
        routes += [
            Route(f"{base}/deployments", list_deployments, methods=["GET"]),
            Route(f"{base}/deployment/{{id}}", get_deployment, methods=["GET"]),
            Route(f"{base}/deployment/{{id}}/logs", deployment_logs, methods=["GET"]),
            Route(f"{base}/deploy", deploy, methods=["POST"]),
        ]
    return routes
