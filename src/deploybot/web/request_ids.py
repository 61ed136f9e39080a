"""A request id for every HTTP request and WebSocket: the client's `X-Request-Id` when it
sent a usable one, else a new one; set for the logs of the request and sent back in the
`X-Request-Id` response header."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deploybot.logformat import request_id

HEADER = b"x-request-id"
_USABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == HEADER:
            text = value.decode("latin-1")
            return text if _USABLE.fullmatch(text) else None
    return None


class RequestIds:
    """Pure ASGI middleware (streaming responses and WebSockets pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        rid = _incoming(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        encoded = rid.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = [(k, v) for k, v in message.get("headers") or () if k != HEADER]
                message = {**message, "headers": [*headers, (HEADER, encoded)]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
