"""`/graphql` over HTTP (with GraphiQL): Strawberry's view, with deploybot's context and
JSON error bodies for requests it cannot use."""

from __future__ import annotations

from typing import Any

import orjson
from cross_web import HTTPException as BadGraphQLRequest
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from deploybot.schema import schema
from deploybot.schema.context import Context
from deploybot.web.errors import error_response
from deploybot.web.pages import graphiql_page
from deploybot.web.requests import base_url, instance_of

CLI_USER_AGENT = "deploybot-cli/"
"""How the `deploybot` client commands introduce themselves (`deploybot.client`)."""


def context_for(connection: HTTPConnection) -> Context:
    return Context(
        backend=instance_of(connection).backend,
        base_url=base_url(connection),
        via_cli=connection.headers.get("user-agent", "").startswith(CLI_USER_AGENT),
    )


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self) -> None:
        super().__init__(schema, graphql_ide="graphiql", keep_alive=True, keep_alive_interval=15)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return context_for(request)

    async def render_graphql_ide(self, request: Request) -> Response:
        """deploybot's GraphiQL page: the same IDE, its assets served from here, not a CDN."""
        return HTMLResponse(graphiql_page())

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
