"""API tokens and the audit trail (admin)."""

from __future__ import annotations

from deploybot.errors import DeploybotError, ErrorCode
from deploybot.schema.access import (
    ApiToken,
    AuditEvent,
    AuditEventConnection,
    AuditEventEdge,
    AuditEventFilter,
    CreateApiTokenInput,
    CreateApiTokenPayload,
    RevokeApiTokenInput,
    RevokeApiTokenPayload,
    Viewer,
)
from deploybot.schema.common import PageInfo, PublicError, UserError
from deploybot.schema.context import Info


async def create_api_token(info: Info, input: CreateApiTokenInput) -> CreateApiTokenPayload:
    try:
        created = await info.context.backend.create_api_token(
            input.name, input.scopes, input.expires_at
        )
    except DeploybotError as exc:
        return CreateApiTokenPayload(
            token=None,
            api_token=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return CreateApiTokenPayload(
        token=created.token,
        api_token=ApiToken.from_record(created.record),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def revoke_api_token(info: Info, input: RevokeApiTokenInput) -> RevokeApiTokenPayload:
    try:
        if not str(input.id).isdigit():
            raise DeploybotError(ErrorCode.INVALID_INPUT, "not a token id", field="id")
        record = await info.context.backend.revoke_api_token(int(input.id))
    except DeploybotError as exc:
        return RevokeApiTokenPayload(
            api_token=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return RevokeApiTokenPayload(
        api_token=ApiToken.from_record(record),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def api_tokens(info: Info) -> list[ApiToken]:
    try:
        found = await info.context.backend.api_tokens()
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    return [ApiToken.from_record(t) for t in found]


async def audit_events(
    info: Info,
    filter: AuditEventFilter | None = None,
    first: int = 50,
    after: str | None = None,
) -> AuditEventConnection:
    """Newest first, keyset-paged by `after` (a cursor from an edge)."""
    try:
        page = await info.context.backend.audit_events(
            filter.to_core() if filter else None, first=first, after=after
        )
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    edges = [
        AuditEventEdge(cursor=e.cursor, node=AuditEvent.from_record(e.node)) for e in page.edges
    ]
    return AuditEventConnection(
        edges=edges,
        nodes=[e.node for e in edges],
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


async def viewer(info: Info) -> Viewer:
    found = await info.context.backend.viewer()
    return Viewer(name=found.name, environment=found.environment, scopes=found.grants)
