"""`/graphql` over HTTP (with GraphiQL): Strawberry's view, with deploybot's context and
JSON error bodies for requests it cannot use.

Without a valid token a request is answered HTTP 401 with a GraphQL body, one error whose
`extensions.code` is UNAUTHENTICATED (and `WWW-Authenticate: Bearer`): GraphQL clients show
the error, HTTP tooling sees the status. The GraphiQL page itself (a GET without a query)
loads without a token; paste the token into its Headers pane.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from cross_web import HTTPException as BadGraphQLRequest
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from deploybot.access import ANONYMOUS, Principal
from deploybot.schema import Schema, schema
from deploybot.schema.context import Context
from deploybot.web.auth import CHALLENGE, principal_of
from deploybot.web.errors import error_response
from deploybot.web.pages import graphiql_page
from deploybot.web.requests import base_url, instance_of

CLI_USER_AGENT = "deploybot-cli/"
"""How the `deploybot` client commands introduce themselves (`deploybot.client`)."""


def context_for(connection: HTTPConnection, principal: Principal) -> Context:
    """The context of one operation: the backend bound to its caller."""
    return Context(
        backend=instance_of(connection).backend_for(principal),
        base_url=base_url(connection),
        principal=principal,
        via_cli=connection.headers.get("user-agent", "").startswith(CLI_USER_AGENT),
    )


def unauthenticated() -> JSONResponse:
    error = {"message": "a valid API token is required", "extensions": {"code": "UNAUTHENTICATED"}}
    return JSONResponse({"data": None, "errors": [error]}, status_code=401, headers=CHALLENGE)


def _is_ide_page(request: Request) -> bool:
    return request.method == "GET" and "query" not in request.query_params


ContextFor = Callable[[HTTPConnection, Principal], Context]


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, served: Schema = schema, make_context: ContextFor = context_for) -> None:
        super().__init__(served, graphql_ide="graphiql", keep_alive=True, keep_alive_interval=15)
        self.make_context = make_context

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        # Only the GraphiQL page is served without a token (__call__ answers 401 otherwise).
        return self.make_context(request, principal_of(request) or ANONYMOUS)

    async def render_graphql_ide(self, request: Request) -> Response:
        """deploybot's GraphiQL page: the same IDE, its assets served from here, not a CDN."""
        return HTMLResponse(graphiql_page())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As Strawberry's, but a request it can't use is answered with a JSON error body."""
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        request = Request(scope=scope, receive=receive)
        if principal_of(request) is None and not _is_ide_page(request):
            await unauthenticated()(scope, receive, send)
            return
        try:
            response = await self.run(request)
        except BadGraphQLRequest as exc:
            response = error_response(exc.status_code, "BAD_REQUEST", exc.reason)
        await response(scope, receive, send)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)
