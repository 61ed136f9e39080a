"""Bitbucket Cloud: `X-Hub-Signature` (`sha256=` HMAC of the raw body) when the hook has a
secret; `X-Event-Key: repo:push`, one event per change in `push.changes[]`; a delivery is
`X-Request-UUID`."""

from __future__ import annotations

from typing import Any

from deploybot.webhooks.base import (
    BadPayload,
    BadSignature,
    HookEvent,
    HookRequest,
    ProviderName,
    body_digest,
    dig,
    hmac_sha256_matches,
    json_body,
    text,
)

KEPT_HEADERS = ("x-event-key", "x-request-uuid", "x-hook-uuid", "user-agent")


class Bitbucket:
    name = ProviderName.BITBUCKET

    def verify(self, request: HookRequest, secret: str, public_key: str | None) -> None:
        if not hmac_sha256_matches(secret, request.body, request.header("x-hub-signature")):
            raise BadSignature("X-Hub-Signature does not match the body and the secret")

    def parse(self, request: HookRequest) -> list[HookEvent]:
        event = request.header("x-event-key")
        if not event:
            raise BadPayload("X-Event-Key is missing")
        payload = json_body(request.body)
        base: dict[str, Any] = dict(
            event=event,
            delivery_id=request.header("x-request-uuid") or body_digest(request.body),
            payload=payload,
            repository=text(payload, "repository", "full_name"),
            clone_url=_clone_url(payload),
            actor=text(payload, "actor", "nickname") or text(payload, "actor", "display_name"),
            headers={h: v for h in KEPT_HEADERS if (v := request.header(h))},
        )
        if event != "repo:push":
            return [HookEvent(kind=event, ignored=f"{event} events deploy nothing", **base)]
        changes = dig(payload, "push", "changes")
        if not isinstance(changes, list):
            raise BadPayload("a repo:push needs `push.changes`")
        events = [_change(change, base) for change in changes if isinstance(change, dict)]
        return events or [HookEvent(kind="push", ignored="the push has no changes", **base)]


def _clone_url(payload: dict[str, Any]) -> str | None:
    html = text(payload, "repository", "links", "html", "href")
    return f"{html}.git" if html else None


def _change(change: dict[str, Any], base: dict[str, Any]) -> HookEvent:
    new = change.get("new")
    if not isinstance(new, dict):
        old = text(change, "old", "name") or "a ref"
        return HookEvent(kind="branch", ref=old, ignored=f"{old} was deleted", **base)
    kind = "tag" if new.get("type") == "tag" else "branch"
    sha = text(new, "target", "hash")
    name = text(new, "name")
    if sha is None or name is None:
        raise BadPayload("a change needs `new.name` and `new.target.hash`")
    return HookEvent(
        kind=kind,
        ref=name,
        commit_sha=sha,
        commit_message=text(new, "target", "message"),
        **base,
    )


BITBUCKET = Bitbucket()
