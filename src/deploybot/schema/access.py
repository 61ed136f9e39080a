"""GraphQL types of access control: API tokens and the audit trail (admin only)."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from deploybot.access import Action
from deploybot.core.audit import AuditFilter as CoreAuditFilter
from deploybot.core.audit import AuditRecord
from deploybot.core.tokens import TokenRecord
from deploybot.schema.common import PageInfo, UserError
from deploybot.schema.context import Info
from deploybot.times import utcnow


@strawberry.type(description="An API token; its secret is shown once, at creation, never again.")
class ApiToken:
    id: strawberry.ID = strawberry.field(
        description="The token's number (revokeApiToken takes it)."
    )
    name: str
    prefix: str = strawberry.field(description="The token's first characters, to recognise it.")
    scopes: list[str] = strawberry.field(
        description="Its grants, `ACTIONS[:ENVIRONMENTS[/APPLICATIONS]][@REPOSITORIES]`."
    )
    expires_at: datetime | None
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(
        description="Last request made with it (updated at most once a minute)."
    )
    revoked_at: datetime | None
    active: bool = strawberry.field(description="Neither revoked nor expired.")

    @classmethod
    def from_record(cls, record: TokenRecord) -> ApiToken:
        return cls(
            id=strawberry.ID(str(record.id)),
            name=record.name,
            prefix=record.prefix,
            scopes=list(record.grants),
            expires_at=record.expires_at,
            created_by=record.created_by,
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
            active=record.is_active(utcnow()),
        )


@strawberry.input
class CreateApiTokenInput:
    name: str = strawberry.field(description="What the token is for (e.g. ci).")
    scopes: list[str] = strawberry.field(
        description="Grants such as `read`, `deploy,read:staging/shop*`, "
        "`record:*/*@github.com/acme/*`, `admin`."
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="When it stops working (none: never)."
    )
    client_mutation_id: str | None = None


@strawberry.type
class CreateApiTokenPayload:
    token: str | None = strawberry.field(
        description="The token's text: shown this once, store it now."
    )
    api_token: ApiToken | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class RevokeApiTokenInput:
    id: strawberry.ID
    client_mutation_id: str | None = None


@strawberry.type
class RevokeApiTokenPayload:
    api_token: ApiToken | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type(description="Who did what, when, and how it ended.")
class AuditEvent:
    id: strawberry.ID
    at: datetime
    token_id: strawberry.ID | None = strawberry.field(description="The token used, if any.")
    principal: str = strawberry.field(description="Who: `token:<id>:<name>`, or `local`.")
    operation: str = strawberry.field(description="The mutation (or CLI command) called.")
    target: str | None = strawberry.field(description="What it was called on.")
    outcome: str = strawberry.field(description="`ok`, or the error code it failed with.")
    message: str | None

    @classmethod
    def from_record(cls, record: AuditRecord) -> AuditEvent:
        return cls(
            id=strawberry.ID(str(record.id)),
            at=record.at,
            token_id=strawberry.ID(str(record.token_id)) if record.token_id else None,
            principal=record.principal,
            operation=record.operation,
            target=record.target,
            outcome=record.outcome,
            message=record.message,
        )


@strawberry.input
class AuditEventFilter:
    operations: list[str] | None = None
    token_ids: list[strawberry.ID] | None = None
    outcomes: list[str] | None = None
    after: datetime | None = strawberry.field(default=None, description="At or after.")
    before: datetime | None = None

    def to_core(self) -> CoreAuditFilter:
        return CoreAuditFilter(
            operations=self.operations,
            token_ids=[int(t) for t in self.token_ids if str(t).isdigit()]
            if self.token_ids
            else None,
            outcomes=self.outcomes,
            after=self.after,
            before=self.before,
        )


@strawberry.type
class AuditEventEdge:
    cursor: str
    node: AuditEvent


@strawberry.type
class AuditEventConnection:
    edges: list[AuditEventEdge]
    nodes: list[AuditEvent]
    page_info: PageInfo


@strawberry.enum(description="What a grant allows.")
class AccessAction(enum.Enum):
    READ = "read"
    DEPLOY = "deploy"
    RECORD = "record"
    ADMIN = "admin"
    SECRETS = "secrets"
    RELAY = "relay"


@strawberry.type(description="The caller: who they are here and what their token may do.")
class Viewer:
    name: str = strawberry.field(description="How audit records and requestedBy name them.")
    environment: str
    scopes: list[str] = strawberry.field(
        description="Their token's grants, `ACTIONS[:ENVIRONMENTS[/APPLICATIONS]][@REPOSITORIES]`."
    )

    @strawberry.field(description="Whether they may `action` on an application here.")
    async def may(self, info: Info, action: AccessAction, application: str | None = None) -> bool:
        return await info.context.backend.may(Action(action.value), application)
