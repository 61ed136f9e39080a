"""GraphQL over WebSocket: `graphql-transport-ws` (the current protocol, spoken by the
npm `graphql-ws` client and GraphiQL) and the legacy `graphql-ws` (Apollo's
subscriptions-transport-ws, `gql`'s default).

Queries and mutations run through the schema as over HTTP. Subscriptions whose
resolver returns a `LiveStream` are multiplexed: every subscriber with the same
document and variables shares one execution and one encoding per batch, and
only the envelope with its operation id is written per socket.

Authentication: the token comes in `connection_init`'s payload (`{"authorization":
"Bearer …"}`, the graphql-ws convention) or in the upgrade request's `Authorization`
header; without a valid one the socket is closed with 4403. The token is checked again
every `Limits.auth_recheck` seconds (through the instance's cache, whose entries live at
most 5 s): a revoked or expired token's socket is closed with 4403 within 10 s. The
caller's grants are part of every multiplexing topic, so subscribers share an execution
only with callers who may see exactly the same things.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationType,
    get_operation_ast,
    specified_rules,
    validate,
)
from graphql.execution import create_source_event_stream, execute_subscription_event
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from deploybot.access import Principal
from deploybot.live.hub import FeedFailed, LiveStream
from deploybot.metrics import ACTIVE_SUBSCRIPTIONS, OPEN_WEBSOCKETS, RATE_LIMITED, timed_operation
from deploybot.schema import Schema
from deploybot.schema import limits as query_limits
from deploybot.schema.context import Context
from deploybot.schema.execution import Executor
from deploybot.schema.limits import parse_limited
from deploybot.web.auth import principal_of, token_from_header, token_of

logger = logging.getLogger(__name__)

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


@dataclass(frozen=True)
class Limits:
    keep_alive: float = 15.0
    init_timeout: float = 10.0
    max_subscriptions: int = 100
    auth_recheck: float = 2.5


@lru_cache(maxsize=1000)
def _parse(query: str) -> DocumentNode | GraphQLError:
    try:
        return parse_limited(query)
    except GraphQLError as exc:
        return exc


def _name_of(operation: Any) -> str | None:
    return operation.name.value if operation.name else None


class _ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _formatted(result: ExecutionResult) -> dict[str, Any]:
    out: dict[str, Any] = {"data": result.data}
    if result.errors:
        out["errors"] = [error.formatted for error in result.errors]
    return out


def _error(message: str, code: str | None = None) -> dict[str, Any]:
    return {"message": message, **({"extensions": {"code": code}} if code else {})}


class GraphQLWebSocket:
    """The ASGI WebSocket endpoint of /graphql."""

    def __init__(
        self,
        schema: Schema,
        context_for: Callable[[WebSocket, Principal], Context],
        authenticate: Callable[[str | None], Awaitable[Principal | None]],
        limits: Limits | None = None,
        notices: Callable[[Context], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.schema = schema
        self.notices = notices
        """Errors to send as a subscription starts, from its context (the relay's environments
        left out of a merged stream)."""
        self.context_for = context_for
        self.authenticate = authenticate
        self.limits = limits or Limits()
        self._validated: dict[str, list[dict[str, Any]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        offered = scope.get("subprotocols") or []
        if TRANSPORT_WS in offered:
            protocol = TRANSPORT_WS
        elif LEGACY_WS in offered:
            protocol = LEGACY_WS
        else:
            await websocket.accept()
            await websocket.close(4406, "Subprotocol not acceptable")
            return
        await websocket.accept(subprotocol=protocol)
        connection = _Connection(self, websocket, protocol == TRANSPORT_WS)
        OPEN_WEBSOCKETS.inc()
        try:
            await connection.serve()
        finally:
            OPEN_WEBSOCKETS.dec()

    def validation_errors(self, query: str, document: DocumentNode) -> list[dict[str, Any]]:
        errors = self._validated.get(query)
        if errors is None:
            rules = (*specified_rules, *query_limits.current().rules)
            found = validate(self.schema._schema, document, rules)
            errors = [dict(e.formatted) for e in found]
            if len(self._validated) < 1000:
                self._validated[query] = errors
        return errors  # type: ignore[return-value]


class _Connection:
    def __init__(self, endpoint: GraphQLWebSocket, websocket: WebSocket, modern: bool) -> None:
        self.endpoint = endpoint
        self.websocket = websocket
        self.modern = modern
        self.acknowledged = False
        self.initialised = asyncio.Event()
        self.operations: dict[str, asyncio.Task[None]] = {}
        self._send_lock = asyncio.Lock()
        self._asgi_send = websocket._send
        self.next_type = "next" if modern else "data"
        self.token = token_of(websocket)
        self.principal: Principal | None = principal_of(websocket)
        """The caller; None until `connection_init` brings a valid token (or the header did)."""

    def context(self) -> Context:
        assert self.principal is not None
        return self.endpoint.context_for(self.websocket, self.principal)

    # --- sending ----------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        async with self._send_lock:
            await self._asgi_send({"type": "websocket.send", "text": text})

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_text(orjson.dumps(message).decode())

    async def close(self, code: int, reason: str) -> None:
        if self.websocket.application_state is not WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await self.websocket.close(code, reason)

    # --- the connection ---------------------------------------------------------------------

    async def serve(self) -> None:
        timers = [
            asyncio.create_task(self._init_timeout()),
            asyncio.create_task(self._keep_alive()),
            asyncio.create_task(self._recheck_token()),
        ]
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    text = message.get("text")
                    if text is None:  # both protocols speak JSON in text frames only
                        raise _ProtocolError(4400, "Invalid message received")
                    await self._handle(text)
                except _ProtocolError as exc:
                    await self.close(exc.code, exc.reason)
                    return
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            for task in [*timers, *self.operations.values()]:
                task.cancel()
            for task in [*timers, *self.operations.values()]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _init_timeout(self) -> None:
        try:
            await asyncio.wait_for(self.initialised.wait(), self.endpoint.limits.init_timeout)
        except TimeoutError:
            await self.close(4408, "Connection initialisation timeout")

    async def _recheck_token(self) -> None:
        """Close the socket once its token stops being valid (revoked, expired)."""
        await self.initialised.wait()
        while True:
            await asyncio.sleep(self.endpoint.limits.auth_recheck)
            if await self.endpoint.authenticate(self.token) is None:
                for task in list(self.operations.values()):
                    task.cancel()
                await self.close(4403, "Forbidden: the token is no longer valid")
                return

    async def _init(self, message: dict[str, Any]) -> None:
        """Authenticate (the payload's token, else the upgrade header's), then acknowledge."""
        if self.initialised.is_set():
            raise _ProtocolError(4429, "Too many initialisation requests")
        payload = message.get("payload")
        if isinstance(payload, dict):
            value = payload.get("authorization") or payload.get("Authorization")
            if isinstance(value, str) and value.strip():
                self.token = token_from_header(value) or value.strip()
                self.principal = await self.endpoint.authenticate(self.token)
        if self.principal is None:
            raise _ProtocolError(4403, "Forbidden: a valid API token is required")
        self.initialised.set()
        self.acknowledged = True
        await self.send_json({"type": "connection_ack"})
        if not self.modern:
            await self.send_json({"type": "ka"})

    async def _keep_alive(self) -> None:
        await self.initialised.wait()
        message = {"type": "ping"} if self.modern else {"type": "ka"}
        while True:
            await asyncio.sleep(self.endpoint.limits.keep_alive)
            await self.send_json(message)

    async def _handle(self, text: str) -> None:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise _ProtocolError(4400, "Invalid message received") from exc
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise _ProtocolError(4400, "Invalid message received")
        kind = message["type"]
        if kind == "connection_init":
            await self._init(message)
        elif self.modern and kind == "ping":
            await self.send_json({"type": "pong"})
        elif self.modern and kind == "pong":
            return
        elif kind in ("subscribe", "start") and (kind == "subscribe") == self.modern:
            await self._start(message)
        elif kind in ("complete", "stop") and (kind == "complete") == self.modern:
            task = self.operations.pop(str(message.get("id")), None)
            if task is not None:
                task.cancel()
        elif not self.modern and kind == "connection_terminate":
            raise _ProtocolError(1000, "terminated")
        else:
            raise _ProtocolError(4400, f"Unknown message type: {kind}")

    async def _start(self, message: dict[str, Any]) -> None:
        if not self.acknowledged:
            raise _ProtocolError(4401, "Unauthorized")
        op_id = message.get("id")
        payload = message.get("payload")
        if not isinstance(op_id, str) or not isinstance(payload, dict):
            raise _ProtocolError(4400, "Invalid message received")
        if op_id in self.operations:
            if self.modern:
                raise _ProtocolError(4409, f"Subscriber for {op_id} already exists")
            self.operations.pop(op_id).cancel()
        if len(self.operations) >= self.endpoint.limits.max_subscriptions:
            limit = self.endpoint.limits.max_subscriptions
            RATE_LIMITED.labels("websocket_operations").inc()
            await self._send_error(
                op_id,
                [_error(f"too many operations on one connection (limit {limit})", "RATE_LIMITED")],
            )
            return
        task = asyncio.create_task(self._operation(op_id, payload))
        self.operations[op_id] = task

    async def _send_error(self, op_id: str, errors: list[dict[str, Any]]) -> None:
        payload: Any = errors if self.modern else errors[0]
        await self.send_json({"type": "error", "id": op_id, "payload": payload})

    async def _operation(self, op_id: str, payload: dict[str, Any]) -> None:
        completed = False
        try:
            completed = await self._run(op_id, payload)
        except asyncio.CancelledError:
            if not self.modern:  # the legacy protocol confirms a stop
                with contextlib.suppress(Exception):
                    await self.send_json({"type": "complete", "id": op_id})
            raise
        except FeedFailed:
            await self._send_error(op_id, [_error("the live feed failed", "INTERNAL_ERROR")])
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            if self.operations.get(op_id) is asyncio.current_task():
                del self.operations[op_id]
        if completed:
            with contextlib.suppress(Exception):
                await self.send_json({"type": "complete", "id": op_id})

    async def _run(self, op_id: str, payload: dict[str, Any]) -> bool:
        """Run one operation; True when it ended normally (send `complete`)."""
        query = payload.get("query")
        variables = payload.get("variables") or {}
        operation_name = payload.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict):
            await self._send_error(op_id, [_error("query must be a string, variables an object")])
            return False
        document = _parse(query)
        if isinstance(document, GraphQLError):
            await self._send_error(op_id, [document.formatted])  # type: ignore[list-item]
            return False
        errors = self.endpoint.validation_errors(query, document)
        if errors:
            await self._send_error(op_id, errors)
            return False
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            await self._send_error(op_id, [_error("unknown or ambiguous operation")])
            return False
        schema = self.endpoint.schema
        context = self.context()
        if operation.operation is not OperationType.SUBSCRIPTION:
            result = await schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
            )
            out: dict[str, Any] = {"data": result.data}
            if result.errors:
                out["errors"] = [e.formatted for e in result.errors]
            await self._send_next(op_id, orjson.dumps(out).decode())
            return True
        built = Executor.build(
            schema._schema,
            document,
            context_value=context,
            raw_variable_values=variables,
            operation_name=operation_name,
        )
        if isinstance(built, list):
            await self._send_error(op_id, [e.formatted for e in built])  # type: ignore[misc]
            return False
        executor = built
        with timed_operation(operation_name or _name_of(operation), "subscription"):
            created = create_source_event_stream(executor)
            source = await created if inspect.isawaitable(created) else created
        if isinstance(source, ExecutionResult):
            schema.process_errors(source.errors or [])
            await self._send_error(op_id, [e.formatted for e in source.errors or []])  # type: ignore[misc]
            return False
        notices = self.endpoint.notices(executor.context_value) if self.endpoint.notices else []
        if notices:
            await self._send_next(op_id, orjson.dumps({"data": None, "errors": notices}).decode())
        ACTIVE_SUBSCRIPTIONS.inc()
        try:
            if isinstance(source, LiveStream):
                return await self._multiplexed(
                    op_id, source, executor, query, operation_name, variables
                )
            async for event in source:  # a plain async iterator: for this subscriber alone
                for text in await self._render(executor, [event]):
                    await self._send_next(op_id, text)
            return True
        finally:
            ACTIVE_SUBSCRIPTIONS.dec()

    async def _render(self, executor: Executor, roots: list[Any]) -> list[str]:
        """Execute the selection once per root value and encode the payloads once."""
        out = []
        for root in roots:
            event = executor.build_per_event_executor(root)
            event.context_value = self.context()
            result = execute_subscription_event(event)
            if executor.is_awaitable(result):
                result = await result
            assert isinstance(result, ExecutionResult)
            if result.errors:
                self.endpoint.schema.process_errors(result.errors)
            out.append(orjson.dumps(_formatted(result)).decode())
        return out

    async def _multiplexed(
        self,
        op_id: str,
        stream: LiveStream,
        executor: Executor,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any],
    ) -> bool:
        base_url = executor.context_value.base_url
        assert self.principal is not None
        topic = (
            query,
            operation_name,
            orjson.dumps(variables, option=orjson.OPT_SORT_KEYS),
            base_url,
            self.principal.grants,  # callers with other grants see other things
        )

        async def render(batch: Any) -> list[str]:
            return await self._render(executor, stream.payloads(batch))

        subscriber = stream.subscribe(topic, render)
        prefix = self._envelope(op_id)
        try:
            async for payloads, _final in subscriber.stream():
                for text in payloads or ():
                    await self.send_text(prefix + text + "}")
                if subscriber.frames:  # a subscriber with a backlog must not starve the loop
                    await asyncio.sleep(0)
        finally:
            stream.leave(subscriber)
        return True

    async def _send_next(self, op_id: str, payload_text: str) -> None:
        await self.send_text(self._envelope(op_id) + payload_text + "}")

    def _envelope(self, op_id: str) -> str:
        """A `next` (or legacy `data`) message up to its payload, which is shared."""
        return (
            '{"id":' + orjson.dumps(op_id).decode() + ',"type":"' + self.next_type + '","payload":'
        )
