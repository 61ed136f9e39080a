"""Queries and mutations of notification targets (admin only: the backend checks)."""

from __future__ import annotations

import strawberry

from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.ids import InvalidId, decode_id
from deploybot.schema.common import PublicError, UserError
from deploybot.schema.context import Info
from deploybot.schema.notifications import (
    CreateNotificationTargetInput,
    CreateNotificationTargetPayload,
    DeleteNotificationTargetInput,
    DeleteNotificationTargetPayload,
    NotificationDelivery,
    NotificationTarget,
)


def target_number(value: str, field: str = "id") -> int:
    if value.isdigit():
        return int(value)
    try:
        gid = decode_id(value)
    except InvalidId:
        gid = None
    if gid is None or gid.type_name != "NotificationTarget":
        raise DeploybotError(
            ErrorCode.INVALID_INPUT, f"not a notification target ID: {value!r}", field=field
        )
    return gid.key


async def create_notification_target(
    info: Info, input: CreateNotificationTargetInput
) -> CreateNotificationTargetPayload:
    try:
        record = await info.context.backend.create_notification_target(input.to_core())
    except (DeploybotError, ValidationFailed) as exc:
        return CreateNotificationTargetPayload(
            notification_target=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return CreateNotificationTargetPayload(
        notification_target=NotificationTarget.from_record(record),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def delete_notification_target(
    info: Info, input: DeleteNotificationTargetInput
) -> DeleteNotificationTargetPayload:
    try:
        record = await info.context.backend.delete_notification_target(target_number(input.id))
    except DeploybotError as exc:
        return DeleteNotificationTargetPayload(
            deleted_notification_target_id=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return DeleteNotificationTargetPayload(
        deleted_notification_target_id=NotificationTarget.from_record(record).id,
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def notification_targets(info: Info) -> list[NotificationTarget]:
    try:
        found = await info.context.backend.notification_targets()
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    return [NotificationTarget.from_record(record) for record in found]


async def notification_deliveries(
    info: Info, target: strawberry.ID, first: int = 20
) -> list[NotificationDelivery]:
    """A target's latest deliveries, newest first (1..100)."""
    try:
        number = target_number(target, "target")
        found = await info.context.backend.notification_deliveries(number, first=first)
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    return [NotificationDelivery.from_record(record) for record in found]
