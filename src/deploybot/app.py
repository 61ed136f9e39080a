"""The Starlette app of `deploybot serve`: the routes of `web/` over one `Instance`, and its
lifespan (the instance's start-up and shutdown, and the embedded runner)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute

from deploybot.config import Settings, get_settings
from deploybot.core.notifications import Notifier
from deploybot.first_start import prepare_access
from deploybot.instance import Instance
from deploybot.rest import rest_routes
from deploybot.runner.worker import Runner
from deploybot.schema import limits as query_limits
from deploybot.schema import schema
from deploybot.web.auth import NotAuthenticated, TokenAuthMiddleware, not_authenticated
from deploybot.web.body_size import BodySizeLimit
from deploybot.web.errors import database_error, http_error, server_error
from deploybot.web.graphql import GraphQLApp, context_for
from deploybot.web.health import healthz, readyz
from deploybot.web.hooks import RedactHookTokens, receive_hook
from deploybot.web.logs import raw_logs
from deploybot.web.metrics import metrics
from deploybot.web.pages import dashboard, static_files
from deploybot.web.providers import provider_routes
from deploybot.web.relay_rpc import relay_rpc
from deploybot.web.relay_stream import relay_stream
from deploybot.web.request_ids import RequestIds
from deploybot.web.websocket import GraphQLWebSocket, Limits


@contextlib.asynccontextmanager
async def _notifier(instance: Instance) -> AsyncIterator[None]:
    """Notifications out, from this process's event bus (off the request path)."""
    notifier = Notifier(instance.db, instance.bus, instance.settings)
    await notifier.start()
    try:
        yield
    finally:
        await notifier.stop()


@contextlib.asynccontextmanager
async def _embedded_runner(instance: Instance, app: Starlette) -> AsyncIterator[None]:
    runner = Runner(instance.db, instance.bus, instance.settings, instance.swarm)
    task = asyncio.create_task(runner.run())
    app.state.runner = runner  # `deploybot serve` drains it on SIGTERM
    try:
        yield
    finally:
        runner.stop()
        with contextlib.suppress(Exception):
            await task


def create_app(
    settings: Settings | None = None,
    *,
    run_migrations: bool = True,
    embedded_runner: bool = True,
) -> Starlette:
    instance = Instance(settings or get_settings())
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactHookTokens) for f in access_log.filters):
        access_log.addFilter(RedactHookTokens())
    query_limits.configure(query_limits.QueryLimits.from_settings(instance.settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(instance.running(migrations=run_migrations))
            await prepare_access(instance)
            await stack.enter_async_context(_notifier(instance))
            if embedded_runner:
                await stack.enter_async_context(_embedded_runner(instance, app))
            # Everything built at start-up lives as long as the process: move it out of
            # the collector's way so collections under load only walk request garbage.
            gc.collect()
            gc.freeze()
            yield

    limits = Limits(
        keep_alive=instance.settings.ws_keep_alive,
        max_subscriptions=instance.settings.ws_max_subscriptions,
        auth_recheck=instance.settings.ws_auth_recheck,
    )
    app = Starlette(
        routes=[
            Route("/deployments/{id}/logs", raw_logs),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/relay/rpc/{method}", relay_rpc, methods=["POST"]),
            Route("/relay/stream/{method}", relay_stream, methods=["POST"]),
            Route(
                "/graphql",
                BodySizeLimit(GraphQLApp(), instance.settings.graphql_max_body_bytes),
                methods=["GET", "POST"],
            ),
            Route("/", dashboard),
            Mount("/static", static_files(), name="static"),
            Route("/hooks/{provider}/{id}", receive_hook, methods=["POST"]),
            Route("/hooks/{provider}/{id}/{token}", receive_hook, methods=["POST"]),
            *provider_routes(),
            WebSocketRoute(
                "/graphql", GraphQLWebSocket(schema, context_for, instance.authenticate, limits)
            ),
            *rest_routes(),
        ],
        middleware=[Middleware(RequestIds), Middleware(TokenAuthMiddleware)],
        lifespan=lifespan,
        exception_handlers={
            HTTPException: http_error,
            NotAuthenticated: not_authenticated,
            DBAPIError: database_error,
            OSError: database_error,
            500: server_error,
        },
    )
    app.state.instance = instance
    app.state.embedded_runner = embedded_runner
    return app
