"""`/healthz`: the process answers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deploybot.web.requests import instance_of


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "environment": instance_of(request).settings.environment})
