"""The relay's answers to the calls it neither merges nor routes by an ID (issue 13).

- The caller and their tokens are the relay's own (as on a GitHub Enterprise host, a token
  belongs to the host that issued it): `viewer`, `may`, `apiTokens`, `createApiToken`,
  `revokeApiToken` and `auditEvents` answer from the relay's own database, and the relay
  audits its own token changes and refusals there.
- Secrets name their environment: routed to it (INVALID_INPUT without one).
- What is configured per environment and has no environment in its arguments (the deploy
  policy, provider webhooks, notification targets, publishing a release) answers
  WRONG_ENVIRONMENT, the code an instance gives a call meant for another environment,
  with a message saying to ask the environment's own instance (as Argo CD keeps such
  settings on each cluster's own instance). The schema's error codes are fixed, so no
  new code is made for this.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

from deploybot.access import Action
from deploybot.core import audit, tokens
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.records import Page, ViewerRecord

if TYPE_CHECKING:
    from deploybot.db.engine import Database
    from deploybot.relay.backend import RelayBackend

RELAY_ENVIRONMENT = "*"
"""What `viewer.environment` says at the relay: every environment (as in a grant)."""


def elsewhere(relay: RelayBackend, what: str) -> NoReturn:
    """WRONG_ENVIRONMENT: `what` is kept by each environment's instance, not the relay."""
    names = ", ".join(sorted(relay.upstreams)) or "none configured"
    raise DeploybotError(
        ErrorCode.WRONG_ENVIRONMENT,
        f"{what} is kept by each environment's own deploybot, not by the relay:"
        f" ask the environment's instance ({names})",
    )


def viewer(relay: RelayBackend) -> ViewerRecord:
    principal = relay.principal
    return ViewerRecord(
        name=principal.label,
        environment=RELAY_ENVIRONMENT,
        grants=[str(g) for g in principal.grants],
    )


def may(relay: RelayBackend, action: Action, application: str | None) -> bool:
    """Whether the caller may `action` on `application` in at least one environment."""
    return any(relay.principal.allows(action, env, application) for env in relay.upstreams)


def _own_db(relay: RelayBackend) -> Database:
    if relay.db is None:
        elsewhere(relay, "this token database")
    return relay.db


def _require_admin(relay: RelayBackend) -> None:
    if not relay.principal.is_admin:
        raise DeploybotError(ErrorCode.FORBIDDEN, "this token may not admin on the relay")


async def _audited_admin(relay: RelayBackend, operation: str, target: str) -> Database:
    db = _own_db(relay)
    try:
        _require_admin(relay)
    except DeploybotError as exc:
        await audit.record(db, relay.principal, operation, target, exc.code, exc.message)
        raise
    return db


async def create_api_token(
    relay: RelayBackend, name: str, scopes: Sequence[str], expires_at: datetime | None
) -> tokens.CreatedToken:
    target = f"token:{name}"
    db = await _audited_admin(relay, "createApiToken", target)
    try:
        created = await tokens.create_token(
            db, name, scopes, expires_at=expires_at, created_by=relay.principal.label
        )
    except DeploybotError as exc:
        await audit.record(db, relay.principal, "createApiToken", target, exc.code, exc.message)
        raise
    await audit.record(db, relay.principal, "createApiToken", target, audit.OK)
    return created


async def api_tokens(relay: RelayBackend) -> list[tokens.TokenRecord]:
    db = _own_db(relay)
    _require_admin(relay)
    return await tokens.list_tokens(db)


async def revoke_api_token(relay: RelayBackend, token_id: int) -> tokens.TokenRecord:
    target = f"token:{token_id}"
    db = await _audited_admin(relay, "revokeApiToken", target)
    try:
        revoked = await tokens.revoke_token(db, token_id)
    except DeploybotError as exc:
        await audit.record(db, relay.principal, "revokeApiToken", target, exc.code, exc.message)
        raise
    if relay.token_cache is not None:
        relay.token_cache.clear()
    await audit.record(db, relay.principal, "revokeApiToken", target, audit.OK)
    return revoked


async def audit_refusal(relay: RelayBackend, operation: str, message: str) -> None:
    if relay.db is not None:
        await audit.record(relay.db, relay.principal, operation, None, ErrorCode.FORBIDDEN, message)


async def audit_events(
    relay: RelayBackend, filter: audit.AuditFilter | None, *, first: int, after: str | None
) -> Page[audit.AuditRecord]:
    db = _own_db(relay)
    _require_admin(relay)
    return await audit.list_events(db, filter, first=first, after=after)
