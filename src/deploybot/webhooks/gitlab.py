"""GitLab: `X-Gitlab-Token` equals the secret; "Push Hook" and "Tag Push Hook"
(`checkout_sha`, `ref`, `project.git_http_url`); a delivery is `Idempotency-Key`, else
`X-Gitlab-Event-UUID`, else a digest of the body."""

from __future__ import annotations

import hmac

from deploybot.webhooks.base import (
    BadPayload,
    BadSignature,
    HookEvent,
    HookRequest,
    ProviderName,
    body_digest,
    json_body,
    short_ref,
    text,
)

KEPT_HEADERS = ("x-gitlab-event", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid", "idempotency-key")
EVENTS = {"Push Hook": "branch", "Tag Push Hook": "tag"}


class GitLab:
    name = ProviderName.GITLAB

    def verify(self, request: HookRequest, secret: str, public_key: str | None) -> None:
        token = request.header("x-gitlab-token") or ""
        if not hmac.compare_digest(token.encode(), secret.encode()):
            raise BadSignature("X-Gitlab-Token is not this hook's secret token")

    def parse(self, request: HookRequest) -> list[HookEvent]:
        event = request.header("x-gitlab-event")
        if not event:
            raise BadPayload("X-Gitlab-Event is missing")
        payload = json_body(request.body)
        delivery = (
            request.header("idempotency-key")
            or request.header("x-gitlab-event-uuid")
            or body_digest(request.body)
        )
        headers = {h: v for h in KEPT_HEADERS if (v := request.header(h))}
        repository = text(payload, "project", "path_with_namespace")
        clone_url = text(payload, "project", "git_http_url")
        if event not in EVENTS:
            return [
                HookEvent(
                    event=event,
                    delivery_id=delivery,
                    payload=payload,
                    kind=event,
                    repository=repository,
                    headers=headers,
                    ignored=f"{event} events deploy nothing",
                )
            ]
        ref = text(payload, "ref")
        if ref is None:
            raise BadPayload(f"a {event} needs `ref`")
        kind, name = short_ref(ref)
        sha = text(payload, "checkout_sha")
        commits = payload.get("commits") or []
        message = next(
            (c.get("message") for c in commits if isinstance(c, dict) and c.get("id") == sha),
            text(payload, "message"),
        )
        event_ = HookEvent(
            event=event,
            delivery_id=delivery,
            payload=payload,
            kind=kind,
            repository=repository,
            clone_url=clone_url,
            ref=name,
            commit_sha=sha,
            actor=text(payload, "user_username") or text(payload, "user_name"),
            commit_message=message if isinstance(message, str) else None,
            headers=headers,
            # A deleted branch or tag has no checkout_sha.
            ignored=None if sha else f"{ref} was deleted",
        )
        return [event_]


GITLAB = GitLab()
