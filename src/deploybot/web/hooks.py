"""`POST /hooks/{provider}/{id}` (Docker Hub: `/hooks/dockerhub/{id}/{token}`): provider
webhooks. No token: the signature is the credential (see `deploybot.webhooks`).

Answers fast, as providers time out: 202 with the deployment queued (id and URLs), 200 with
the reason for an event that deploys nothing, 401 for a bad signature (nothing written),
404 for an unknown hook, 413 over the size limit (the rest of the body is not read), 400
for a body that is not the provider's, 409/422 when the deploy itself is refused.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deploybot.access import ANONYMOUS
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.ids import encode_id
from deploybot.metrics import WEBHOOK_DELIVERIES
from deploybot.records import DeploymentRecord, WebhookOutcome
from deploybot.web.errors import error_response
from deploybot.web.requests import base_url, instance_of
from deploybot.webhooks import HookRequest, ProviderName

logger = logging.getLogger(__name__)

_STATUS = {
    ErrorCode.WEBHOOK_NOT_FOUND: 404,
    ErrorCode.SIGNATURE_INVALID: 401,
    ErrorCode.PAYLOAD_INVALID: 400,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.DEPLOYMENT_IN_PROGRESS: 409,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 409,
}


_TOKEN_PATH = re.compile(r"(/hooks/[a-z]+/\d+/)[^/?\s]+")


class RedactHookTokens(logging.Filter):
    """Keeps Docker Hub's URL tokens (its only credential) out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any("/hooks/" in str(a) for a in record.args):
            record.args = tuple(
                _TOKEN_PATH.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


class TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or TooLarge as soon as it is known to exceed `limit` (the rest unread)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def deployment_links(base: str, provider: str, repository: str, record: DeploymentRecord) -> Any:
    return {
        "id": encode_id("Deployment", record.environment, record.id),
        "number": record.id,
        "state": record.state.value,
        "url": f"{base}/{provider}/{repository}/deployment/{record.id}",
        "logsUrl": f"{base}/deployments/{record.id}/logs",
    }


def _answer(request: Request, provider: str, outcome: WebhookOutcome) -> JSONResponse:
    delivery = outcome.delivery
    body: dict[str, Any] = {
        "delivery": {"id": delivery.id, "outcome": delivery.outcome, "reason": delivery.reason},
        "duplicate": outcome.duplicate,
    }
    if outcome.deployment is None:
        return JSONResponse(body, status_code=200)
    repository = (outcome.deployment.original_request or {}).get("repository")
    body["deployment"] = deployment_links(
        base_url(request), provider, repository or "-", outcome.deployment
    )
    return JSONResponse(body, status_code=202)


async def receive_hook(
    request: Request, *, provider: str | None = None, repository: str | None = None
) -> Response:
    """`/hooks/{provider}/{id}[/{token}]`, or (`repository` given) seed 000's
    `/{provider}/{owner}/{repo}/deploy`, which names the repository instead of the hook."""
    provider = provider or request.path_params["provider"]
    raw_id = request.path_params.get("id", "0")
    if provider not in {p.value for p in ProviderName} or not raw_id.isdigit():
        return error_response(404, "WEBHOOK_NOT_FOUND", f"no webhook at {request.url.path}")
    instance = instance_of(request)
    try:
        body = await read_body(request, instance.settings.webhook_max_body)
    except TooLarge:
        limit = instance.settings.webhook_max_body
        WEBHOOK_DELIVERIES.labels(provider, "too_large").inc()
        response = error_response(413, "PAYLOAD_TOO_LARGE", f"the body exceeds {limit} bytes")
        response.headers["Connection"] = "close"
        return response
    hook = HookRequest(
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        token=request.path_params.get("token"),
    )
    backend = instance.backend_for(ANONYMOUS)
    try:
        if repository is not None:
            outcome = await backend.receive_repository_webhook(provider, repository, hook)
        else:
            outcome = await backend.receive_webhook(provider, int(raw_id), hook)
    except DeploybotError as exc:
        if exc.code is ErrorCode.SIGNATURE_INVALID:
            logger.warning("webhook %s/%s: %s", provider, raw_id, exc.message)
        refused = exc.code.value.lower() if exc.code in _UNRECORDED else "rejected"
        WEBHOOK_DELIVERIES.labels(provider, refused).inc()
        return error_response(_STATUS.get(exc.code, 422), exc.code.value, exc.message)
    except ValidationFailed as exc:
        WEBHOOK_DELIVERIES.labels(provider, "rejected").inc()
        first = exc.errors[0]
        return error_response(422, first.code.value, str(exc))
    delivered = "duplicate" if outcome.duplicate else str(outcome.delivery.outcome).lower()
    WEBHOOK_DELIVERIES.labels(provider, delivered).inc()
    return _answer(request, provider, outcome)


_UNRECORDED = {ErrorCode.SIGNATURE_INVALID, ErrorCode.PAYLOAD_INVALID, ErrorCode.WEBHOOK_NOT_FOUND}
"""Refusals before a delivery is recorded: counted under their own name."""
