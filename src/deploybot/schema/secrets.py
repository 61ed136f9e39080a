"""GraphQL types and inputs of the secrets deploybot keeps: no type ever has a value field."""

from __future__ import annotations

from datetime import datetime

import strawberry

from deploybot.inputs import SecretRef, SetSecretRequest
from deploybot.records import SecretRecord
from deploybot.runner.stack.file_objects import KEPT_SECRET_PREFIX
from deploybot.schema.common import UserError


@strawberry.type(
    description="A secret deploybot keeps for an application, encrypted at rest. A stack "
    f"uses it as an external secret named `{KEPT_SECRET_PREFIX}<name>`; its value is never shown."
)
class KeptSecret:
    application: str
    environment: str
    name: str
    version: int = strawberry.field(description="1 for the first value, +1 for each new one.")
    created_at: datetime
    updated_at: datetime = strawberry.field(description="When the current value was set.")
    stack_name: str = strawberry.field(
        description="The name a stack file gives the secret (`external: true`)."
    )

    @classmethod
    def from_record(cls, record: SecretRecord) -> KeptSecret:
        return cls(
            application=record.application,
            environment=record.environment,
            name=record.name,
            version=record.version,
            created_at=record.created_at,
            updated_at=record.updated_at,
            stack_name=f"{KEPT_SECRET_PREFIX}{record.name}",
        )


@strawberry.input(description="A new value for a kept secret; deploy again to roll it out.")
class SetSecretInput:
    application: str
    name: str
    value: str = strawberry.field(description="Stored encrypted; never shown again.")
    environment: str | None = strawberry.field(
        default=None, description="This instance's environment when omitted."
    )
    client_mutation_id: str | None = None

    def __repr__(self) -> str:  # never the value, whatever prints the input
        return f"SetSecretInput(application={self.application!r}, name={self.name!r})"

    def to_core(self) -> SetSecretRequest:
        return SetSecretRequest(
            application=self.application,
            name=self.name,
            value=self.value,
            environment=self.environment,
        )


@strawberry.input
class DeleteSecretInput:
    application: str
    name: str
    environment: str | None = None
    client_mutation_id: str | None = None

    def to_core(self) -> SecretRef:
        return SecretRef(application=self.application, name=self.name, environment=self.environment)


@strawberry.type
class SetSecretPayload:
    secret: KeptSecret | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class DeleteSecretPayload:
    deleted_secret: KeptSecret | None = strawberry.field(description="What was deleted.")
    user_errors: list[UserError]
    client_mutation_id: str | None
