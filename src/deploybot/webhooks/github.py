"""GitHub: `X-Hub-Signature-256` over the raw body; `ping`, `push` (branches and tags) and
`deployment` (the Deployments API) events; a delivery is `X-GitHub-Hook-ID` +
`X-GitHub-Delivery`."""

from __future__ import annotations

from typing import Any

from deploybot.webhooks.base import (
    ZERO_SHA,
    BadPayload,
    BadSignature,
    HookEvent,
    HookRequest,
    ProviderName,
    body_digest,
    hmac_sha256_matches,
    json_body,
    short_ref,
    text,
)

KEPT_HEADERS = ("x-github-event", "x-github-delivery", "x-github-hook-id", "user-agent")


class GitHub:
    name = ProviderName.GITHUB

    def verify(self, request: HookRequest, secret: str, public_key: str | None) -> None:
        if not hmac_sha256_matches(secret, request.body, request.header("x-hub-signature-256")):
            raise BadSignature("X-Hub-Signature-256 does not match the body and the secret")

    def parse(self, request: HookRequest) -> list[HookEvent]:
        event = request.header("x-github-event")
        if not event:
            raise BadPayload("X-GitHub-Event is missing")
        payload = json_body(request.body)
        delivery = request.header("x-github-delivery") or body_digest(request.body)
        hook_id = request.header("x-github-hook-id")
        base: dict[str, Any] = dict(
            event=event,
            delivery_id=f"{hook_id}:{delivery}" if hook_id else delivery,
            payload=payload,
            repository=text(payload, "repository", "full_name"),
            clone_url=text(payload, "repository", "clone_url"),
            headers={h: v for h in KEPT_HEADERS if (v := request.header(h))},
        )
        if event == "ping":
            return [
                HookEvent(kind="ping", ignored="ping: the hook works, nothing to deploy", **base)
            ]
        if event == "push":
            return [_push(payload, base)]
        if event == "deployment":
            return [_deployment(payload, base)]
        return [HookEvent(kind=event, ignored=f"{event} events deploy nothing", **base)]


def _push(payload: dict[str, Any], base: dict[str, Any]) -> HookEvent:
    ref = text(payload, "ref")
    after = text(payload, "after")
    if ref is None or after is None:
        raise BadPayload("a push event needs `ref` and `after`")
    kind, name = short_ref(ref)
    actor = text(payload, "pusher", "name") or text(payload, "sender", "login")
    if payload.get("deleted") or after == ZERO_SHA:
        return HookEvent(kind=kind, ref=name, actor=actor, ignored=f"{ref} was deleted", **base)
    # An annotated tag's `after` is the tag object; head_commit is the commit it points at.
    sha = (text(payload, "head_commit", "id") if kind == "tag" else None) or after
    return HookEvent(
        kind=kind,
        ref=name,
        commit_sha=sha,
        actor=actor,
        commit_message=text(payload, "head_commit", "message"),
        **base,
    )


def _deployment(payload: dict[str, Any], base: dict[str, Any]) -> HookEvent:
    sha = text(payload, "deployment", "sha")
    if sha is None:
        raise BadPayload("a deployment event needs `deployment.sha`")
    return HookEvent(
        kind="deployment",
        ref=text(payload, "deployment", "ref"),
        commit_sha=sha,
        environment=text(payload, "deployment", "environment"),
        actor=text(payload, "deployment", "creator", "login") or text(payload, "sender", "login"),
        commit_message=text(payload, "deployment", "description"),
        **base,
    )


GITHUB = GitHub()
