"""Queries and mutations of provider webhooks (admin only: the backend checks)."""

from __future__ import annotations

import strawberry

from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.ids import InvalidId, decode_id
from deploybot.schema.common import PublicError, UserError
from deploybot.schema.context import Info
from deploybot.schema.webhooks import (
    CreateWebhookInput,
    CreateWebhookPayload,
    DeleteWebhookInput,
    DeleteWebhookPayload,
    UpdateWebhookInput,
    UpdateWebhookPayload,
    Webhook,
    WebhookDelivery,
)


def hook_number(value: str, field: str = "id") -> int:
    """A webhook's number from its global ID (or the bare number)."""
    if value.isdigit():
        return int(value)
    try:
        gid = decode_id(value)
    except InvalidId:
        gid = None
    if gid is None or gid.type_name != "Webhook":
        raise DeploybotError(ErrorCode.INVALID_INPUT, f"not a webhook ID: {value!r}", field=field)
    return gid.key


async def create_webhook(info: Info, input: CreateWebhookInput) -> CreateWebhookPayload:
    try:
        created = await info.context.backend.create_webhook(input.to_core())
    except (DeploybotError, ValidationFailed) as exc:
        return CreateWebhookPayload(
            webhook=None,
            secret=None,
            url=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    webhook = Webhook.from_record(created.webhook, created.secret)
    return CreateWebhookPayload(
        webhook=webhook,
        secret=created.secret,
        url=info.context.base_url + webhook.path,
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def update_webhook(info: Info, input: UpdateWebhookInput) -> UpdateWebhookPayload:
    try:
        record, secret = await info.context.backend.update_webhook(
            hook_number(input.id), input.to_core()
        )
    except (DeploybotError, ValidationFailed) as exc:
        return UpdateWebhookPayload(
            webhook=None,
            secret=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return UpdateWebhookPayload(
        webhook=Webhook.from_record(record, secret),
        secret=secret,
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def delete_webhook(info: Info, input: DeleteWebhookInput) -> DeleteWebhookPayload:
    try:
        record = await info.context.backend.delete_webhook(hook_number(input.id))
    except DeploybotError as exc:
        return DeleteWebhookPayload(
            deleted_webhook_id=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return DeleteWebhookPayload(
        deleted_webhook_id=Webhook.from_record(record).id,
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def webhooks(info: Info) -> list[Webhook]:
    try:
        found = await info.context.backend.webhooks()
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    return [Webhook.from_record(record) for record in found]


async def webhook_deliveries(
    info: Info, webhook: strawberry.ID, first: int = 20
) -> list[WebhookDelivery]:
    """A webhook's latest deliveries, newest first (1..100)."""
    try:
        number = hook_number(webhook, "webhook")
        found = await info.context.backend.webhook_deliveries(number, first=first)
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    return [WebhookDelivery.from_record(record) for record in found]
