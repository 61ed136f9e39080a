"""The relay's environments: name → base URL, service token and timeout, from
`DEPLOYBOT_RELAY_ENVIRONMENTS` (JSON text, or `@path` of a JSON file)."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel, Field, SecretStr


class Upstream(BaseModel):
    name: str
    url: str
    token: SecretStr
    """The environment's service token: it needs the `relay` grant there."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds one call may take before the environment counts as unavailable."""


def parse_environments(text: str) -> dict[str, Upstream]:
    """`{"staging": {"url": "http://…", "token": "…", "timeout": 5}, …}`, or `@file.json`."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    if not text.strip():
        return {}
    body = orjson.loads(text)
    if not isinstance(body, dict):
        raise ValueError("relay environments: a JSON object of name → {url, token}")
    found = {}
    for name, value in body.items():
        upstream = Upstream.model_validate({**value, "name": name})
        found[name] = upstream.model_copy(update={"url": upstream.url.rstrip("/")})
    return found
