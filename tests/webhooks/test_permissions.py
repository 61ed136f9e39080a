"""Who may do what with webhooks, at the backend (every transport gets the same answer):
configuration is admin's, a delivery's deploy runs as the hook and may deploy only its own
application, and provider views show what the caller may read."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deploybot.access import Action, Grant, Principal
from deploybot.backend.local import webhook_principal
from deploybot.config import Settings
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.inputs import DeploymentRef, PageRequest, WebhookRequest
from deploybot.instance import Instance
from deploybot.webhooks import HookRequest
from tests.webhooks.hooks import body_of, github_push

READER = Principal(name="reader", grants=(Grant(frozenset({Action.READ})),))
SHOP_READER = Principal(
    name="shop-reader", grants=(Grant(frozenset({Action.READ}), applications=("wh-shop",)),)
)


@pytest.fixture
async def instance(tmp_path: Path) -> AsyncIterator[Instance]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/deploybot.db",
        environment="test",
        work_dir=tmp_path / "work",
    )
    made = Instance(settings)
    async with made.running():
        yield made


def hook_request(secret: str, repository: str) -> HookRequest:
    body = body_of(github_push(repository, "e" * 40))
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "x-github-event": "push",
        "x-github-delivery": repository,
        "x-hub-signature-256": signature,
    }
    return HookRequest(headers, body)


async def test_configuration_is_admin_only(instance: Instance) -> None:
    reader = instance.backend_for(READER)
    request = WebhookRequest(provider="github", repository="a/b", application="b", branches=["*"])
    for call in (
        reader.create_webhook(request),
        reader.webhooks(),
        reader.update_webhook(1, WebhookRequest(branches=["main"])),
        reader.delete_webhook(1),
        reader.webhook_deliveries(1, first=10),
        reader.notification_targets(),
        reader.notification_deliveries(1, first=10),
    ):
        with pytest.raises(DeploybotError) as refused:
            await call
        assert refused.value.code is ErrorCode.FORBIDDEN
    assert (await instance.backend.create_webhook(request)).webhook.application == "b"


async def test_a_hook_deploys_as_itself_and_views_follow_read_scope(instance: Instance) -> None:
    principal = webhook_principal(7, "test", "wh-shop")
    assert principal.name == "webhook:7"
    assert principal.allows(Action.DEPLOY, "test", "wh-shop", "git://x/shop.git")
    assert not principal.allows(Action.DEPLOY, "test", "other")
    assert not principal.allows(Action.ADMIN, "test")
    assert not principal.allows(Action.DEPLOY, "prod", "wh-shop")

    admin = instance.backend
    made = {}
    for app, repository in (("wh-shop", "acme/shop"), ("wh-blog", "acme/blog")):
        created = await admin.create_webhook(
            WebhookRequest(
                provider="github",
                repository=repository,
                application=app,
                repository_url=f"git://127.0.0.1:1/{app}.git",
                branches=["main"],
            )
        )
        # No token: an anonymous caller with the right signature deploys, as the hook.
        anonymous = instance.backend_for(Principal(name="anonymous", grants=()))
        outcome = await anonymous.receive_webhook(
            "github", created.webhook.id, hook_request(created.secret, repository)
        )
        assert outcome.deployment is not None
        made[app] = outcome.deployment
    page = PageRequest(first=10)
    shop_reader = instance.backend_for(SHOP_READER)
    listed = await shop_reader.provider_deployments("github", "acme/shop", page)
    assert [e.node.id for e in listed.edges] == [made["wh-shop"].id]
    blog = await shop_reader.provider_deployments("github", "acme/blog", page)
    assert blog.edges == []  # not the caller's to read: as if there were none
    assert (
        await shop_reader.provider_deployment(
            "github", "acme/blog", DeploymentRef(None, made["wh-blog"].id)
        )
        is None
    )
    nobody = instance.backend_for(Principal(name="nobody", grants=()))
    with pytest.raises(DeploybotError) as refused:
        await nobody.provider_deployments("github", "acme/shop", page)
    assert refused.value.code is ErrorCode.FORBIDDEN
