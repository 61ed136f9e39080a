"""A request body limit for any ASGI route: more than `max_bytes` → 413 with a JSON body,
and the rest of the body is never read.

A declared `Content-Length` above the limit is refused before the route runs; a body
without one (chunked) is counted while the route reads it, and the read that crosses the
limit ends the route. Each route sets its own limit (/graphql 1 MiB by default; webhooks
may allow more).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deploybot.errors import ErrorCode
from deploybot.web.errors import error_response


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            ErrorCode.PAYLOAD_TOO_LARGE.value,
            f"request body larger than {self.max_bytes} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared: int | None = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and declared > self.max_bytes:
            return await self._refuse(scope, receive, send)
        if declared is not None and declared >= 0 and not chunked:
            # The server reads exactly the declared length as the body (HTTP/1.1 framing):
            # nothing more can arrive, so the body needs no counting (no wrapped receive
            # and send on the hot path).
            return await self.app(scope, receive, send)
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if started:  # the route answered before reading it all: nothing more to say
                return
            await self._refuse(scope, receive, send)
