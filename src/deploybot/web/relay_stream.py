"""`POST /relay/stream/<method>`: a relay's subscription to this instance's live feeds, as
NDJSON (see `relay.streams`). Like `/relay/rpc/`, only a caller the relay forwarded may use
it, and the backend's `follow_*` method checks that caller as for any subscription here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from prometheus_client import Gauge
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from deploybot.errors import DeploybotError, ErrorCode
from deploybot.live.hub import LiveSource
from deploybot.relay import wire
from deploybot.relay.streams import HEARTBEAT, StreamMethod, stream_method
from deploybot.web.relay_rpc import relay_backend

RELAY_STREAMS = Gauge(
    "deploybot_relay_streams", "Live streams open to relays, by backend method", ["method"]
)
NDJSON = "application/x-ndjson"
MODES = ("follow", "check", "initial")


async def relay_stream(request: Request) -> Response:
    backend = relay_backend(request)
    if isinstance(backend, Response):
        return backend
    try:
        call = stream_method(request.path_params["method"])
        body = orjson.loads(await request.body())
        if not isinstance(body, dict) or body.get("mode", "follow") not in MODES:
            raise ValueError("a JSON object with arguments and a mode")
        cursor = body.get("cursor")
        if cursor is not None and not isinstance(cursor, int):
            raise ValueError("cursor: a number")
        arguments = call.decode_arguments(body.get("arguments") or {})
        opened = await getattr(backend, call.name)(**arguments)
    except DeploybotError as exc:
        return Response(orjson.dumps(wire.error_body(exc)) + b"\n", media_type=NDJSON)
    except (ValueError, orjson.JSONDecodeError) as exc:
        error = DeploybotError(ErrorCode.INVALID_INPUT, f"bad relay stream: {str(exc)[:200]}")
        return JSONResponse(wire.error_body(error), status_code=400)
    mode = body.get("mode", "follow")
    return StreamingResponse(
        _messages(call, opened, mode, cursor),
        media_type=NDJSON,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _messages(
    call: StreamMethod, opened: Any, mode: str, cursor: int | None
) -> AsyncIterator[bytes]:
    if call.text:
        yield b'{"ok":{}}\n'
        async for chunk in opened:
            yield orjson.dumps({"text": chunk}) + b"\n"
        return
    assert isinstance(opened, LiveSource)
    header: dict[str, Any] = {"environment": opened.environment}
    if mode == "follow" and opened.resume is not None:
        header["cursor"] = await opened.resume()  # a change made meanwhile is after it
    yield orjson.dumps({"ok": header}) + b"\n"
    if mode == "check":
        return
    if mode == "initial":
        initial = opened.initial or opened.feed.backlog
        batch = await initial(cursor)
        if batch is None:
            yield b'{"batch":null}\n'
        else:
            yield call.encode_batch(opened.kept(batch))
        return
    RELAY_STREAMS.labels(call.name).inc()
    try:
        batches = (call.encode_batch(batch) async for batch in opened.batches())
        async for message in with_heartbeats(batches, HEARTBEAT):
            yield message
    finally:
        RELAY_STREAMS.labels(call.name).dec()


async def with_heartbeats(messages: AsyncIterator[bytes], every: float) -> AsyncIterator[bytes]:
    """`messages`, and an empty line whenever none came for `every` seconds: the relay
    reads a silent stream as a dead connection (`relay.streams.SILENCE`) and reopens it."""
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async for message in messages:
                await queue.put(message)
            await queue.put(None)
        except Exception as exc:
            await queue.put(exc)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), every)
            except TimeoutError:
                yield b"\n"
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
