"""Every root field declares a permission: no query, mutation or subscription can ship
unguarded (the backend narrows each call further; see tests/web/test_auth.py)."""

from __future__ import annotations

from strawberry.types.base import get_object_definition

from deploybot.access import Action
from deploybot.schema import Mutation, Query, Subscription, schema
from deploybot.schema.permissions import Requires, declared_permissions

EXPECTED = {
    "deploy": Action.DEPLOY,
    "cancelDeployment": Action.DEPLOY,
    "rollback": Action.DEPLOY,
    "validateDeployment": Action.DEPLOY,
    "recordDeployment": Action.RECORD,
    "reportDeploymentStatus": Action.RECORD,
    "addDeploymentResult": Action.RECORD,
    "publishRelease": Action.RECORD,
    "createApiToken": Action.ADMIN,
    "revokeApiToken": Action.ADMIN,
    "apiTokens": Action.ADMIN,
    "auditEvents": Action.ADMIN,
    "deployPolicy": Action.ADMIN,
    "updateDeployPolicy": Action.ADMIN,
    "secrets": Action.SECRETS,
    "setSecret": Action.SECRETS,
    "deleteSecret": Action.SECRETS,
    "addDeploymentServices": Action.RECORD,
    "webhooks": Action.ADMIN,
    "webhookDeliveries": Action.ADMIN,
    "notificationTargets": Action.ADMIN,
    "notificationDeliveries": Action.ADMIN,
    "createWebhook": Action.ADMIN,
    "updateWebhook": Action.ADMIN,
    "deleteWebhook": Action.ADMIN,
    "createNotificationTarget": Action.ADMIN,
    "deleteNotificationTarget": Action.ADMIN,
}
"""Fields that need more than `read` (every other root field needs `read`)."""


def _root_fields() -> list[tuple[str, str, list[Requires]]]:
    found = []
    for root in (Query, Mutation, Subscription):
        definition = get_object_definition(root, strict=True)
        for field in definition.fields:
            name = schema.config.name_converter.get_graphql_name(field)
            permissions = [p for p in declared_permissions(field) if isinstance(p, Requires)]
            found.append((definition.name, name, permissions))
    return found


def test_every_root_field_declares_a_permission() -> None:
    fields = _root_fields()
    assert len(fields) > 20
    missing = [f"{root}.{name}" for root, name, permissions in fields if not permissions]
    assert missing == [], f"root fields without a declared permission: {missing}"


def test_each_root_field_needs_the_action_of_the_issue() -> None:
    for root, name, permissions in _root_fields():
        wanted = EXPECTED.get(name, Action.READ)
        assert [p.action for p in permissions] == [wanted], f"{root}.{name}"
