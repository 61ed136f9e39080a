"""The Starlette app of `deploybot relay`: the same GraphQL schema over a `RelayBackend`.

Callers authenticate with their own tokens against the relay's own token database (the
same `deploybot token` commands and `DEPLOYBOT_ADMIN_TOKEN` as an instance); the relay then
calls each environment with that environment's service token, forwarding the caller's name
and grants. No runner, no Docker client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import cast

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from deploybot.access import Principal
from deploybot.backend import Backend
from deploybot.config import Settings, get_settings
from deploybot.first_start import prepare_access
from deploybot.instance import Instance
from deploybot.relay.backend import RelayBackend
from deploybot.relay.config import parse_environments
from deploybot.relay.logs import relay_raw_logs
from deploybot.relay.schema import relay_schema
from deploybot.relay.streams import RelayLive, unavailable_notices
from deploybot.schema import limits as query_limits
from deploybot.schema.context import Context
from deploybot.web.auth import NotAuthenticated, TokenAuthMiddleware, not_authenticated
from deploybot.web.body_size import BodySizeLimit
from deploybot.web.errors import http_error, server_error
from deploybot.web.graphql import GraphQLApp
from deploybot.web.health import healthz
from deploybot.web.requests import base_url
from deploybot.web.websocket import GraphQLWebSocket, Limits


def create_relay_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    instance = Instance(settings)
    upstreams = parse_environments(settings.relay_environments)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=64)
    clients = {name: httpx.AsyncClient(limits=limits) for name in upstreams}
    """One keep-alive pool per environment."""
    from deploybot.access import ANONYMOUS

    live = RelayLive()
    backend = RelayBackend(
        upstreams, clients, ANONYMOUS, live=live, db=instance.db, token_cache=instance.tokens
    )
    query_limits.configure(query_limits.QueryLimits.from_settings(settings))

    def context_for(connection: HTTPConnection, principal: Principal) -> Context:
        return Context(
            backend=cast(Backend, backend.bound(principal)),
            base_url=base_url(connection),
            principal=principal,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with instance.running():
            await prepare_access(instance)
            try:
                yield
            finally:
                await live.close()
                await backend.rpc.close()
                for client in clients.values():
                    await client.aclose()

    async def metrics(request: Request) -> Response:
        """This process's figures (the relay's upstream streams among them)."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    ws_limits = Limits(
        keep_alive=settings.ws_keep_alive,
        max_subscriptions=settings.ws_max_subscriptions,
        auth_recheck=settings.ws_auth_recheck,
    )
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route("/deployments/{id}/logs", relay_raw_logs),
            WebSocketRoute(
                "/graphql",
                GraphQLWebSocket(
                    relay_schema, context_for, instance.authenticate, ws_limits, unavailable_notices
                ),
            ),
            Route(
                "/graphql",
                BodySizeLimit(
                    GraphQLApp(relay_schema, context_for), settings.graphql_max_body_bytes
                ),
                methods=["GET", "POST"],
            ),
        ],
        middleware=[Middleware(TokenAuthMiddleware)],
        lifespan=lifespan,
        exception_handlers={
            HTTPException: http_error,
            NotAuthenticated: not_authenticated,
            500: server_error,
        },
    )
    app.state.instance = instance
    app.state.relay = backend
    return app
