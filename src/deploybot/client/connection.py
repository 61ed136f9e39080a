"""GraphQL over HTTP (queries, mutations) and over WebSocket (subscriptions, in the
`graphql-transport-ws` protocol) to one deploybot server, with a bearer token.

A dropped WebSocket raises `ConnectionLost`; the caller resumes (`follow.py` reconnects
and asks the logs again after the last sequence it printed).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

PROTOCOL = "graphql-transport-ws"


def _version() -> str:
    try:
        return version("deploybot")
    except PackageNotFoundError:  # run from a source tree
        return "dev"


USER_AGENT = f"deploybot-cli/{_version()}"
"""The server records deploys asked with it as trigger CLI."""
AUTH_CLOSE_CODES = {4401, 4403}


class ClientError(Exception):
    """Something the command reports and exits for (the subclass names the exit code)."""


class AuthenticationFailed(ClientError):
    pass


class Unreachable(ClientError):
    pass


class ConnectionLost(ClientError):
    """The WebSocket dropped; the operations may be resumed on a new one."""


@dataclass
class GraphQLErrors(ClientError):
    errors: list[dict[str, Any]]

    def __str__(self) -> str:
        return "; ".join(_describe(e) for e in self.errors)

    @property
    def codes(self) -> set[str]:
        return {str((e.get("extensions") or {}).get("code")) for e in self.errors}


def _describe(error: Mapping[str, Any]) -> str:
    code = (error.get("extensions") or {}).get("code")
    return f"{code}: {error.get('message')}" if code else str(error.get("message"))


def graphql_url(url: str) -> str:
    """`http://host:8000` or `http://host:8000/graphql` → the GraphQL endpoint."""
    url = url.rstrip("/")
    return url if url.endswith("/graphql") else url + "/graphql"


@dataclass(frozen=True)
class Operation:
    query: str
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """A message of one running operation: `next` (with data), `error` or `complete`."""

    name: str
    kind: str
    data: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None


class Connection:
    def __init__(self, url: str, token: str | None, *, request_timeout: float = 30) -> None:
        self.url = graphql_url(url)
        self.ws_url = "ws" + self.url.removeprefix("http")
        self.token = token
        self.headers = {"User-Agent": USER_AGENT}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.AsyncClient(headers=self.headers, timeout=request_timeout)

    async def close(self) -> None:
        await self.http.aclose()

    async def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        """The data of a query or mutation; GraphQL errors raise."""
        try:
            response = await self.http.post(
                self.url, json={"query": query, "variables": dict(variables or {})}
            )
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from exc
        if response.status_code in (401, 403):
            raise AuthenticationFailed(f"{response.status_code}: {_error_text(response)}")
        if response.status_code != 200:
            raise Unreachable(
                f"{self.url} answered {response.status_code}: {_error_text(response)}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise Unreachable(f"{self.url} answered something that is not JSON") from exc
        errors = body.get("errors")
        if errors:
            failure = GraphQLErrors(errors)
            if failure.codes & {"FORBIDDEN", "UNAUTHENTICATED"}:
                raise AuthenticationFailed(str(failure))
            raise failure
        return body["data"]

    async def subscribe(self, operations: Mapping[str, Operation]) -> AsyncIterator[Event]:
        """Run the operations on one WebSocket; yields their messages until all completed."""
        try:
            async with connect(
                self.ws_url,
                subprotocols=[PROTOCOL],  # type: ignore[list-item]
                additional_headers={k: v for k, v in self.headers.items() if k != "User-Agent"},
                user_agent_header=USER_AGENT,
                open_timeout=15,
                ping_interval=10,
                ping_timeout=20,
                max_size=None,
            ) as socket:
                await self._initialise(socket)
                async for event in self._run(socket, operations):
                    yield event
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise AuthenticationFailed(f"WebSocket refused: {exc}") from exc
            raise Unreachable(f"WebSocket refused: {exc}") from exc
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            if code in AUTH_CLOSE_CODES:
                reason = exc.rcvd.reason if exc.rcvd else ""
                raise AuthenticationFailed(f"WebSocket closed {code}: {reason}") from exc
            raise ConnectionLost(f"WebSocket closed ({exc})") from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise ConnectionLost(f"WebSocket to {self.ws_url} failed: {exc}") from exc

    async def _initialise(self, socket: ClientConnection) -> None:
        payload = {"authorization": f"Bearer {self.token}"} if self.token else {}
        await socket.send(orjson.dumps({"type": "connection_init", "payload": payload}).decode())
        async with asyncio.timeout(15):
            while True:
                message = orjson.loads(await socket.recv())
                if message.get("type") == "connection_ack":
                    return
                if message.get("type") == "ping":
                    await socket.send('{"type":"pong"}')

    async def _run(
        self, socket: ClientConnection, operations: Mapping[str, Operation]
    ) -> AsyncIterator[Event]:
        ids = {str(n): name for n, name in zip(itertools.count(1), operations, strict=False)}
        for op_id, name in ids.items():
            operation = operations[name]
            message = {
                "id": op_id,
                "type": "subscribe",
                "payload": {"query": operation.query, "variables": dict(operation.variables)},
            }
            await socket.send(orjson.dumps(message).decode())
        running = set(ids)
        while running:
            message = orjson.loads(await socket.recv())
            kind = message.get("type")
            if kind == "ping":
                await socket.send('{"type":"pong"}')
                continue
            op_id = message.get("id")
            if op_id not in running:
                continue
            name = ids[op_id]
            if kind == "next":
                payload = message.get("payload") or {}
                yield Event(name, "next", payload.get("data"), payload.get("errors"))
            elif kind == "error":
                running.discard(op_id)
                yield Event(name, "error", errors=list(message.get("payload") or []))
            elif kind == "complete":
                running.discard(op_id)
                yield Event(name, "complete")


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        return f"{error.get('code')}: {error.get('message')}"
    except (ValueError, AttributeError):
        return response.text[:200]
