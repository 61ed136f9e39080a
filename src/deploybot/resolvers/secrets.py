"""Mutations and the query of the secrets deploybot keeps."""

from __future__ import annotations

from deploybot.errors import DeploybotError, ValidationFailed
from deploybot.schema.common import PublicError, UserError
from deploybot.schema.context import Info
from deploybot.schema.secrets import (
    DeleteSecretInput,
    DeleteSecretPayload,
    KeptSecret,
    SetSecretInput,
    SetSecretPayload,
)


async def set_secret(info: Info, input: SetSecretInput) -> SetSecretPayload:
    try:
        record = await info.context.backend.set_secret(input.to_core())
    except (DeploybotError, ValidationFailed) as exc:
        return SetSecretPayload(
            secret=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return SetSecretPayload(
        secret=KeptSecret.from_record(record),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def delete_secret(info: Info, input: DeleteSecretInput) -> DeleteSecretPayload:
    try:
        record = await info.context.backend.delete_secret(input.to_core())
    except (DeploybotError, ValidationFailed) as exc:
        return DeleteSecretPayload(
            deleted_secret=None,
            user_errors=UserError.from_exception(exc),
            client_mutation_id=input.client_mutation_id,
        )
    return DeleteSecretPayload(
        deleted_secret=KeptSecret.from_record(record),
        user_errors=[],
        client_mutation_id=input.client_mutation_id,
    )


async def secrets(info: Info, application: str, environment: str | None = None) -> list[KeptSecret]:
    """Names, versions and update times, never values."""
    try:
        records = await info.context.backend.secrets(application, environment)
    except DeploybotError as exc:
        raise PublicError.from_exception(exc) from exc
    return [KeptSecret.from_record(r) for r in records]
