"""Who is calling, for every HTTP and WebSocket route: the token of `Authorization: Bearer
<token>` (or Basic with the token as password) becomes a `Principal`.

`TokenAuthMiddleware` authenticates each connection once (through the instance's token
cache) and leaves the answer in the ASGI scope; it refuses nothing itself, so /healthz and
the GraphiQL page stay open. A route that needs a caller asks `bound_backend(request)`:
the backend bound to the caller, or `NotAuthenticated` (a 401 JSON body, by the app's
exception handler). Permissions are decided by that backend, never here.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from deploybot.access import Action, GrantError, Principal, parse_grants
from deploybot.backend.local import LocalBackend
from deploybot.errors import ErrorCode
from deploybot.outages import DATABASE_UNAVAILABLE_MESSAGE, is_database_unavailable
from deploybot.relay.wire import FORWARDED_GRANTS, ON_BEHALF_OF
from deploybot.web.errors import error_response
from deploybot.web.requests import instance_of

PRINCIPAL = "deploybot.principal"
"""Scope key: the caller's `Principal`, or None when no valid token came with the request."""
TOKEN = "deploybot.token"
"""Scope key: the token text the request presented (re-checked by long-lived sockets)."""
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="deploybot"'}


class NotAuthenticated(Exception):
    """No token, or one that is unknown, revoked or expired."""

    def __init__(self, message: str = "a valid API token is required") -> None:
        super().__init__(message)
        self.message = message


def token_from_header(value: str | None) -> str | None:
    """`Bearer <token>`, or `Basic base64(user:token)` (what curl -u and git send)."""
    if not value:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class TokenAuthMiddleware:
    """Authenticates HTTP requests and WebSocket upgrades; refuses nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            token = token_from_header(_header(scope, b"authorization"))
            instance = scope["app"].state.instance
            scope[TOKEN] = token
            try:
                principal = await instance.authenticate(token)
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise
                await database_unavailable(scope, receive, send)
                return
            forwarded = _header(scope, ON_BEHALF_OF.encode())
            if forwarded is not None and principal is not None:
                grants = _header(scope, FORWARDED_GRANTS.encode()) or ""
                principal = forwarded_principal(
                    principal, forwarded, grants, instance.settings.environment
                )
            scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)


async def database_unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    """A token could not be checked because the database is down (restarting): HTTP 503
    with `Retry-After` (a GraphQL body on /graphql, so GraphQL clients see the
    `extensions.code`); a WebSocket is refused with close code 1013, "try again later"."""
    code = ErrorCode.DATABASE_UNAVAILABLE.value
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013, "reason": code})
        return
    if scope["path"].rstrip("/").endswith("/graphql"):
        error = {"message": DATABASE_UNAVAILABLE_MESSAGE, "extensions": {"code": code}}
        response: Response = JSONResponse(
            {"data": None, "errors": [error]}, status_code=503, headers={"Retry-After": "1"}
        )
    else:
        response = error_response(503, code, DATABASE_UNAVAILABLE_MESSAGE, retry_after=1)
    await response(scope, receive, send)


def forwarded_principal(
    relay: Principal, caller: str, grants: str, environment: str
) -> Principal | None:
    """The caller a relay forwards, with the caller's grants capped by the relay token's
    actions; None (→ 401) when the token is not allowed to forward (no relay grant here)."""
    if not relay.allows(Action.RELAY, environment, None):
        return None
    try:
        wanted = parse_grants(g for g in grants.split(";") if g.strip())
    except GrantError:
        return None
    capped = []
    for grant in wanted:
        # an admin's grant gives every action: what the relay token gives of them
        given = set(Action) if Action.ADMIN in grant.actions else set(grant.actions)
        actions = {a for a in given if a is not Action.RELAY and relay.may_anywhere(a)}
        if not relay.is_admin:
            actions.discard(Action.ADMIN)
        if actions:
            capped.append(dataclasses.replace(grant, actions=frozenset(actions)))
    return dataclasses.replace(
        relay, grants=tuple(capped), on_behalf_of=caller[:200], key=f"{relay.key}/{caller[:200]}"
    )


def principal_of(connection: HTTPConnection) -> Principal | None:
    principal: Principal | None = connection.scope.get(PRINCIPAL)
    return principal


def token_of(connection: HTTPConnection) -> str | None:
    token: str | None = connection.scope.get(TOKEN)
    return token


def bound_backend(connection: HTTPConnection) -> LocalBackend:
    """The backend bound to the caller; `NotAuthenticated` (→ 401) when there is none."""
    principal = principal_of(connection)
    if principal is None:
        raise NotAuthenticated()
    return instance_of(connection).backend_for(principal)


def unauthenticated_response(message: str = "a valid API token is required") -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "UNAUTHENTICATED", "message": message}},
        status_code=401,
        headers=CHALLENGE,
    )


async def not_authenticated(request: Request, exc: Exception) -> Response:
    """The app's handler of `NotAuthenticated` on plain routes."""
    assert isinstance(exc, NotAuthenticated)
    return unauthenticated_response(exc.message)
