"""The HTTP surface: /graphql (with GraphiQL), raw logs, health; and the process lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from cross_web import HTTPException as BadGraphQLRequest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from deploybot.config import Settings, get_settings
from deploybot.core import deployments as core
from deploybot.core import logs as core_logs
from deploybot.core.feeds import DeploymentLogFeed
from deploybot.db import migrate
from deploybot.db.engine import Database
from deploybot.errors import DeploybotError
from deploybot.events.bus import EventBus
from deploybot.events.postgres import PostgresRelay
from deploybot.runner.preflight import Preflight
from deploybot.runner.service_logs import ServiceLogStreams
from deploybot.runner.status import SwarmStatus
from deploybot.runner.swarm import Swarm
from deploybot.runner.worker import Runner
from deploybot.schema import schema
from deploybot.schema.context import Context, Services
from deploybot.subscriptions.multiplex import LiveStream
from deploybot.subscriptions.websocket import GraphQLWebSocket, Limits

logger = logging.getLogger(__name__)


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, services: Services) -> None:
        super().__init__(schema, graphql_ide="graphiql", keep_alive=True, keep_alive_interval=15)
        self.services = services

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return context_for(self.services, request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As Strawberry's, but a request it can't use is answered with a JSON error body."""
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except BadGraphQLRequest as exc:
            response = error_response(exc.status_code, "BAD_REQUEST", exc.reason)
        await response(scope, receive, send)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)


def context_for(services: Services, request: Request | WebSocket) -> Context:
    settings = services.settings
    if "public_url" in settings.model_fields_set:
        return Context(services=services, base_url=settings.public_url.rstrip("/"))
    scheme = request.url.scheme.replace("ws", "http")
    host = request.headers.get("host") or settings.public_url.split("://", 1)[-1]
    return Context(services=services, base_url=f"{scheme}://{host}")


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """Seed 002's error body: {"error": {"code", "message"}}."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(
    settings: Settings | None = None,
    *,
    run_migrations: bool = True,
    embedded_runner: bool = True,
) -> Starlette:
    settings = settings or get_settings()
    db = Database(settings.database_url)
    bus = EventBus()
    swarm = Swarm(settings.docker_host)  # the process's one Docker client, closed at shutdown
    services = Services(
        db=db,
        bus=bus,
        settings=settings,
        inspector=Preflight(settings, swarm),
        swarm=SwarmStatus(swarm),
        service_logs=ServiceLogStreams(swarm),
    )
    relay = None if db.is_sqlite else PostgresRelay(settings.database_url, bus)

    async def raw_logs(request: Request) -> Response:
        raw_id = request.path_params["id"]
        if not raw_id.isdigit():
            return error_response(400, "INVALID_INPUT", f"not a deployment number: {raw_id!r}")
        number = int(raw_id)
        follow = request.query_params.get("follow", "false").lower()
        if follow not in ("true", "false", "1", "0"):
            return error_response(400, "INVALID_INPUT", "follow must be true or false")
        if follow in ("false", "0"):
            if await core.get_deployment(db, number) is None:
                return error_response(404, "DEPLOYMENT_NOT_FOUND", f"deployment {number} not found")
            return StreamingResponse(
                core_logs.raw_text(db, number), media_type="text/plain; charset=utf-8"
            )
        feed = DeploymentLogFeed(db, bus, number)
        try:
            await services.hub.prepare(feed)
        except DeploybotError as exc:
            return error_response(404, exc.code.value, exc.message)
        stream = LiveStream(services.hub, feed, lambda batch: [batch])

        async def text() -> AsyncIterator[str]:
            async for batch in stream.batches():
                if batch.items:
                    yield "".join(core_logs.format_line(line) for line in batch.items)

        return StreamingResponse(
            text(),
            media_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "environment": settings.environment})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
        return error_response(exc.status_code, code, f"{exc.detail}: {request.url.path}")

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s", request.url.path, exc_info=exc)
        return error_response(500, "INTERNAL_ERROR", "internal server error")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        if run_migrations:
            await migrate.upgrade(db)
        if relay is not None:
            await relay.start()
        runner = None
        task = None
        if embedded_runner:
            runner = Runner(db, bus, settings, swarm)
            task = asyncio.create_task(runner.run())
        # Everything built at start-up lives as long as the process: move it out of
        # the collector's way so collections under load only walk request garbage.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if runner is not None and task is not None:
                runner.stop()
                with contextlib.suppress(Exception):
                    await task
            await services.hub.close()
            await swarm.close()
            if relay is not None:
                await relay.stop()
            await db.dispose()

    graphql_app = GraphQLApp(services)

    async def websocket_context(websocket: WebSocket) -> Context:
        return context_for(services, websocket)

    app = Starlette(
        routes=[
            Route("/deployments/{id}/logs", raw_logs),
            Route("/healthz", healthz),
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            WebSocketRoute(
                "/graphql",
                GraphQLWebSocket(
                    schema,
                    websocket_context,
                    Limits(
                        keep_alive=settings.ws_keep_alive,
                        max_subscriptions=settings.ws_max_subscriptions,
                    ),
                ),
            ),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, 500: server_error},
    )
    app.state.services = services
    return app
