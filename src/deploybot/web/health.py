"""`/healthz`: the process answers. `/readyz`: it can do its work — the database answers
and is at the head migration, and Docker answers where a runner runs; else 503 naming
the failing checks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deploybot.web.requests import instance_of


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "environment": instance_of(request).settings.environment})


async def readyz(request: Request) -> Response:
    runs_runner = bool(getattr(request.app.state, "embedded_runner", False))
    checks = await instance_of(request).readiness(docker=runs_runner)
    failing = [check.name for check in checks if not check.ok]
    body = {
        "status": "not ready" if failing else "ready",
        "failing": failing,
        "checks": {check.name: {"ok": check.ok, "message": check.message} for check in checks},
    }
    return JSONResponse(body, status_code=503 if failing else 200)
