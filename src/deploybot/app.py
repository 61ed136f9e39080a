"""The Starlette app of `deploybot serve`: the routes of `web/` over one `Instance`, and its
lifespan (the instance's start-up and shutdown, and the embedded runner)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route, WebSocketRoute

from deploybot.config import Settings, get_settings
from deploybot.instance import Instance
from deploybot.runner.worker import Runner
from deploybot.schema import schema
from deploybot.web.errors import http_error, server_error
from deploybot.web.graphql import GraphQLApp, context_for
from deploybot.web.health import healthz
from deploybot.web.logs import raw_logs
from deploybot.web.websocket import GraphQLWebSocket, Limits


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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(instance.running(migrations=run_migrations))
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
    )
    app = Starlette(
        routes=[
            Route("/deployments/{id}/logs", raw_logs),
            Route("/healthz", healthz),
            Route("/graphql", GraphQLApp(), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", GraphQLWebSocket(schema, context_for, limits)),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, 500: server_error},
    )
    app.state.instance = instance
    return app
