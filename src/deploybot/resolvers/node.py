"""`node(id:)`: fetch any object by its global ID."""

from __future__ import annotations

import strawberry

from deploybot.errors import DeploybotError, ErrorCode
from deploybot.ids import InvalidId, decode_id
from deploybot.inputs import DeploymentRef, ReleaseRef
from deploybot.schema.common import Node, PublicError
from deploybot.schema.context import Info
from deploybot.schema.deployments import Deployment
from deploybot.schema.releases import Release
from deploybot.schema.webhooks import Webhook


async def node(info: Info, id: strawberry.ID) -> Node | None:
    try:
        gid = decode_id(id)
    except InvalidId as exc:
        raise PublicError(str(exc), ErrorCode.INVALID_INPUT.value) from exc
    backend = info.context.backend
    if gid.type_name == "Deployment":
        found = await backend.deployment(DeploymentRef(gid.environment, gid.key))
        return Deployment.from_record(found, info.context.base_url) if found else None
    if gid.type_name == "Release":
        release = await backend.release(ReleaseRef(gid.environment, gid.key))
        return Release.from_record(release) if release else None
    if gid.type_name == "Webhook":
        try:
            hook = await backend.webhook(gid.key)
        except DeploybotError as exc:
            raise PublicError.from_exception(exc) from exc
        return Webhook.from_record(hook) if hook and hook.environment == gid.environment else None
    return None
