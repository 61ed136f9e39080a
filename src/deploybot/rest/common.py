"""What every seed's routes share: the caller's backend, the rate-limit hook, request bodies
read into pydantic models, and JSON answers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from deploybot.backend.local import LocalBackend
from deploybot.web.auth import bound_backend

M = TypeVar("M", bound=BaseModel)


def backend_of(connection: HTTPConnection) -> LocalBackend:
    """The backend bound to this request's caller: the one place every REST route gets it.
    `NotAuthenticated` (401 with a JSON body) without a valid token: the seeds' clients send
    one as `Authorization: Bearer` or as the password of Basic authentication."""
    return bound_backend(connection)


class BodyError(Exception):
    """A request body that is not JSON, or not the model's shape; `field` names the first
    offending field (dotted), `message` says what is wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BodyError(f"the body is not JSON: {exc}") from exc


def parse(model: type[M], data: Any) -> M:
    """`data` as `model`, or a BodyError naming the first field that does not fit."""
    if not isinstance(data, Mapping):
        raise BodyError("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise BodyError(f"{field}: {first['msg']}", field or None) from exc


async def read_body(request: Request, model: type[M]) -> M:
    return parse(model, await read_json(request))


def json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def rfc3339(moment: datetime | None) -> str | None:
    """`2024-01-01T00:00:00Z` (UTC, seconds, as the seeds write their times)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    text = moment.replace(tzinfo=None).isoformat(timespec="seconds")
    return text + "Z"


def go_duration(seconds: float | None) -> str | None:
    """Seconds as Go's `time.Duration.String()`: `5m0s`, `1h2m3s`, `1.5s`, `250ms`, `0s`."""
    if seconds is None:
        return None
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        millis = round(seconds * 1000, 3)
        return f"{sign}{millis:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs = round(secs, 3)
    text = f"{secs:g}s"
    if hours:
        return f"{sign}{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{sign}{int(minutes)}m{text}"
    return sign + text


R = TypeVar("R", bound=Response)


def waited(response: R, exc: object) -> R:
    """`response` with `Retry-After` when `exc` is a rate limit that says how long to wait."""
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
