"""`POST /relay/rpc/<method>`: a relay's call of this instance's backend (see `relay.wire`).
Only a caller the relay forwarded (a token with the relay grant) may call it; the backend
checks each call against that caller's grants as for any other transport."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deploybot.backend.protocol import Backend
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.relay import wire
from deploybot.web.auth import bound_backend, principal_of


def relay_backend(request: Request) -> Backend | Response:
    """The backend bound to the caller a relay forwards, or the 403 for anyone else: only
    a token with the relay grant forwards a caller (`web.auth`)."""
    principal = principal_of(request)
    if principal is None or principal.on_behalf_of is None:
        error = DeploybotError(ErrorCode.FORBIDDEN, "only a relay (relay grant) may call this")
        return JSONResponse(wire.error_body(error), status_code=403)
    return bound_backend(request)


async def relay_rpc(request: Request) -> Response:
    backend = relay_backend(request)
    if isinstance(backend, Response):
        return backend
    try:
        call = wire.method(request.path_params["method"])
        arguments = call.decode_arguments(orjson.loads(await request.body()))
        answer = await getattr(backend, call.name)(**arguments)
        return Response(
            orjson.dumps({"answer": call.encode_answer(answer)}), media_type="application/json"
        )
    except DeploybotError as exc:
        return JSONResponse(wire.error_body(exc))
    except (ValueError, orjson.JSONDecodeError) as exc:
        error = DeploybotError(ErrorCode.INVALID_INPUT, f"bad relay call: {str(exc)[:200]}")
        return JSONResponse(wire.error_body(error), status_code=400)
