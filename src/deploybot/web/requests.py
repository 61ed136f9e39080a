"""What a transport knows of a request: the instance serving it and the base URL clients
reach it at (for links such as `logsUrl`)."""

from __future__ import annotations

from typing import cast

from starlette.requests import HTTPConnection

from deploybot.instance import Instance


def instance_of(connection: HTTPConnection) -> Instance:
    return cast(Instance, connection.app.state.instance)


def base_url(connection: HTTPConnection) -> str:
    settings = instance_of(connection).settings
    if "public_url" in settings.model_fields_set:
        return settings.public_url.rstrip("/")
    scheme = connection.url.scheme.replace("ws", "http")
    host = connection.headers.get("host") or settings.public_url.split("://", 1)[-1]
    return f"{scheme}://{host}"
