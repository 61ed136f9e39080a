"""Request bodies above a route's limit: 413 with a JSON body, before the rest is read
(a declared Content-Length, and a chunked body counted while it streams)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response

from deploybot.web.body_size import BodySizeLimit
from tests.conftest import server_env, ws_url
from tests.servers import ADMIN_TOKEN, AUTH_HEADERS, WS_INIT_PAYLOAD, ServerProcess

AUTH_LINE = f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("body-size")
    process = ServerProcess(
        server_env(tmp, DEPLOYBOT_GRAPHQL_MAX_BODY_BYTES=str(LIMIT)), tmp, "--no-runner"
    )
    yield process
    process.stop()


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response read from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def test_a_declared_length_above_the_limit_is_refused_before_the_body(
    server: ServerProcess,
) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + AUTH_LINE
            + b"Content-Length: 200000000\r\n\r\n"
        )
        status, headers, body = _response(sock)  # not one byte of the 200 MB was sent
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": {"code": "PAYLOAD_TOO_LARGE", "message": f"request body larger than {LIMIT} bytes"}
    }


def test_a_chunked_body_is_cut_off_where_it_crosses_the_limit(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + AUTH_LINE
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"x" * 16384
        for _ in range(LIMIT // len(piece) + 1):  # just over the limit; never the last chunk
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        status, _headers, body = _response(sock)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_bodies_within_the_limit_are_served(server: ServerProcess) -> None:
    padding = " " * (LIMIT - 200)
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": "{ __typename }" + padding},
        timeout=30,
        headers=AUTH_HEADERS,
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}
    with httpx.Client(base_url=server.url, timeout=30, headers=AUTH_HEADERS) as http:
        too_big = http.post("/graphql", json={"query": "{ __typename }" + " " * LIMIT})
        assert too_big.status_code == 413
        assert http.post("/graphql", json={"query": "{ __typename }"}).status_code == 200


async def test_a_websocket_message_above_the_limit_closes_the_socket(
    server: ServerProcess,
) -> None:
    async with websockets.connect(
        ws_url(server),
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        max_size=None,
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": WS_INIT_PAYLOAD}))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        query = "{ __typename }" + " " * LIMIT
        await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": {"query": query}}))
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1009  # message too big


async def _echo(request: Request) -> Response:
    return JSONResponse({"size": len(await request.body())})


async def _chunks() -> AsyncIterator[bytes]:
    for _ in range(5):
        yield b"x" * 4


async def test_each_route_sets_its_own_limit() -> None:
    """The same piece in front of another route (e.g. webhooks with a larger limit)."""
    app = Starlette(
        routes=[
            Route("/small", BodySizeLimit(request_response(_echo), 10), methods=["POST"]),
            Route("/large", BodySizeLimit(request_response(_echo), 1000), methods=["POST"]),
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.post("/small", content=b"12345")).json() == {"size": 5}
        refused = await http.post("/small", content=b"x" * 11)
        assert refused.status_code == 413
        assert refused.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        streamed = await http.post("/small", content=_chunks())  # no Content-Length
        assert streamed.status_code == 413
        assert (await http.post("/large", content=b"x" * 500)).json() == {"size": 500}
