"""What every provider module shares: the request as received, the event it maps to, and
the two ways a request is refused (not the provider's, not the provider's format)."""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


class ProviderName(enum.StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    BITBUCKET = "bitbucket"
    DOCKER_HUB = "dockerhub"
    TRAVIS = "travis"


class BadSignature(Exception):
    """The request does not prove it comes from the provider (401, nothing written)."""


class BadPayload(Exception):
    """The body is not the provider's format (400)."""


@dataclass(frozen=True)
class HookRequest:
    """A webhook request as received: lower-case headers, the raw body, the URL's token."""

    headers: Mapping[str, str]
    body: bytes
    token: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class HookEvent:
    """A provider's event, mapped: what it asks to deploy, or why it deploys nothing.

    `kind` is `push` (a branch), `tag`, `deployment`, `image` (Docker Hub) or `ping`;
    `ignored` says why an event deploys nothing whatever the hook's configuration.
    """

    event: str
    delivery_id: str
    payload: Any
    kind: str
    repository: str | None = None
    clone_url: str | None = None
    ref: str | None = None
    """Branch or tag name (not the full refname)."""
    commit_sha: str | None = None
    actor: str | None = None
    commit_message: str | None = None
    environment: str | None = None
    image_tag: str | None = None
    callback_url: str | None = None
    ignored: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """The headers that matter (event, delivery id), kept with the original request."""


class Provider(Protocol):
    name: ProviderName

    def verify(self, request: HookRequest, secret: str, public_key: str | None) -> None:
        """Raise BadSignature unless the request proves it knows the secret."""
        ...

    def parse(self, request: HookRequest) -> list[HookEvent]:
        """The events of a request (a Bitbucket push may carry several changes); raise
        BadPayload for a body that is not the provider's format."""
        ...


def json_body(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload(f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadPayload("the body is not a JSON object")
    return payload


def hmac_sha256_matches(secret: str, body: bytes, header: str | None) -> bool:
    """`sha256=<hex>` (GitHub's and Bitbucket's scheme), compared in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def sign_sha256(secret: str, body: bytes) -> str:
    """The `sha256=` signature of a body (deploybot's own notifications use it too)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_digest(body: bytes) -> str:
    """The delivery id of a provider that gives none."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def dig(payload: Any, *path: str) -> Any:
    """`payload[a][b]...`, or None where a level is missing or not an object."""
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload


def text(payload: Any, *path: str) -> str | None:
    value = dig(payload, *path)
    return value if isinstance(value, str) and value else None


def short_ref(ref: str) -> tuple[str, str]:
    """`refs/heads/main` → ("branch", "main"); `refs/tags/v1` → ("tag", "v1")."""
    if ref.startswith("refs/tags/"):
        return "tag", ref.removeprefix("refs/tags/")
    return "branch", ref.removeprefix("refs/heads/")


ZERO_SHA = "0" * 40
