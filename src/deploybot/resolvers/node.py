"""`node(id:)`: fetch any object by its global ID."""

from __future__ import annotations

import strawberry

from deploybot.core import deployments as core
from deploybot.core import releases
from deploybot.ids import InvalidId, decode_id
from deploybot.schema.common import Node, PublicError
from deploybot.schema.context import Info
from deploybot.schema.deployments import Deployment
from deploybot.schema.releases import Release


async def node(info: Info, id: strawberry.ID) -> Node | None:
    try:
        gid = decode_id(id)
    except InvalidId as exc:
        raise PublicError(str(exc)) from exc
    if gid.environment != info.context.settings.environment:
        return None
    if gid.type_name == "Deployment":
        row = await core.get_deployment(info.context.db, gid.key)
        return Deployment.from_row(row, info.context.base_url) if row else None
    if gid.type_name == "Release":
        release = await releases.get_release(info.context.db, gid.key)
        return Release.from_row(release, gid.environment) if release else None
    return None
