"""Docker Hub: it signs nothing, so the hook's URL carries an unguessable token (as Argo CD,
Portainer and CapRover do); a push of `repository.repo_name:push_data.tag` becomes an image
deploy, and the final state goes back to `callback_url`."""

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
    text,
)


class DockerHub:
    name = ProviderName.DOCKER_HUB

    def verify(self, request: HookRequest, secret: str, public_key: str | None) -> None:
        token = request.token or ""
        if not hmac.compare_digest(token.encode(), secret.encode()):
            raise BadSignature("the token in the URL is not this hook's")

    def parse(self, request: HookRequest) -> list[HookEvent]:
        payload = json_body(request.body)
        repository = text(payload, "repository", "repo_name")
        tag = text(payload, "push_data", "tag")
        if repository is None or tag is None:
            raise BadPayload("a Docker Hub push needs `repository.repo_name` and `push_data.tag`")
        return [
            HookEvent(
                event="push",
                delivery_id=body_digest(request.body),
                payload=payload,
                kind="image",
                repository=repository,
                ref=tag,
                image_tag=tag,
                actor=text(payload, "push_data", "pusher"),
                callback_url=text(payload, "callback_url"),
            )
        ]


DOCKER_HUB = DockerHub()
