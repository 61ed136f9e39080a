"""Errors over plain HTTP: a JSON body `{"error": {"code", "message"}}` (seed 002's shape),
never a stack trace."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deploybot.errors import DeploybotError, ErrorCode
from deploybot.outages import DATABASE_UNAVAILABLE_MESSAGE, is_database_unavailable

logger = logging.getLogger(__name__)

_STATUS = {
    "DEPLOYMENT_NOT_FOUND": 404,
    "INVALID_INPUT": 400,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "RATE_LIMITED": 429,
    "PAYLOAD_TOO_LARGE": 413,
}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """`{"error": {"code", "message"[, "retryAfter"]}}`; a wait also goes in `Retry-After`."""
    error: dict[str, object] = {"code": code, "message": message}
    all_headers = dict(headers or {})
    if retry_after is not None:
        error["retryAfter"] = retry_after
        all_headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": error}, status_code=status, headers=all_headers or None)


def expected_failure(exc: DeploybotError) -> JSONResponse:
    """An expected failure of the backend, with the status its code means over HTTP."""
    return error_response(
        _STATUS.get(exc.code.value, 400), exc.code.value, exc.message, retry_after=exc.retry_after
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
    return error_response(exc.status_code, code, f"{exc.detail}: {request.url.path}")


async def database_error(request: Request, exc: Exception) -> Response:
    """A database or connection error on a plain route: 503 DATABASE_UNAVAILABLE when the
    database is down (a restart, not a bug: no traceback); anything else goes on to
    `server_error`."""
    if not is_database_unavailable(exc):
        raise exc
    logger.warning("database unavailable on %s: %s", request.url.path, exc)
    return error_response(
        503, ErrorCode.DATABASE_UNAVAILABLE.value, DATABASE_UNAVAILABLE_MESSAGE, retry_after=1
    )


async def server_error(request: Request, exc: Exception) -> Response:
    if is_database_unavailable(exc):
        logger.warning("database unavailable on %s: %s", request.url.path, exc)
        return error_response(
            503, ErrorCode.DATABASE_UNAVAILABLE.value, DATABASE_UNAVAILABLE_MESSAGE, retry_after=1
        )
    logger.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "internal server error")
