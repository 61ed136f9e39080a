"""Application status and health, live from the Swarm through the core."""

from __future__ import annotations

from deploybot.core import applications as core
from deploybot.errors import DeploybotError
from deploybot.schema.applications import Application
from deploybot.schema.common import PublicError
from deploybot.schema.context import Info


def _environment(info: Info, environment: str | None) -> str:
    own = info.context.settings.environment
    if environment is not None and environment != own:
        raise PublicError(f"this instance serves {own!r}, not {environment!r}; ask the relay")
    return own


async def application(info: Info, name: str, environment: str | None = None) -> Application | None:
    services = info.context.services
    try:
        status = await core.application_status(
            services.db, services.swarm, name, _environment(info, environment)
        )
    except DeploybotError as exc:
        raise PublicError(exc.message) from exc
    return Application.of(status) if status else None


async def applications(info: Info, environment: str | None = None) -> list[Application]:
    services = info.context.services
    env = _environment(info, environment)
    try:
        names = await core.application_names(services.db, services.swarm, env)
        found = [await core.application_status(services.db, services.swarm, n, env) for n in names]
    except DeploybotError as exc:
        raise PublicError(exc.message) from exc
    return [Application.of(status) for status in found if status is not None]
