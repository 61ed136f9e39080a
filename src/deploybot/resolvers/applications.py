"""Application status and health, live from the Swarm through the backend."""

from __future__ import annotations

from deploybot.errors import DeploybotError
from deploybot.schema.applications import Application
from deploybot.schema.common import PublicError
from deploybot.schema.context import Info


async def application(info: Info, name: str, environment: str | None = None) -> Application | None:
    try:
        status = await info.context.backend.application(name, environment)
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    return Application.of(status) if status else None


async def applications(info: Info, environment: str | None = None) -> list[Application]:
    try:
        found = await info.context.backend.applications(environment)
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    return [Application.of(status) for status in found]
