"""The permission every root field declares (a test fails on a field without one).

They are the coarse, schema-level half of access control: a caller whose token gives the
action nowhere is refused before the resolver runs (`extensions.code` FORBIDDEN; for a
mutation, its payload with a FORBIDDEN `userErrors` entry). Which environments,
applications and repositories a call may touch is decided by the backend, below every
transport (`backend/guard.py`), so GraphQL, the raw-log route and any later surface give
the same answers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types.base import StrawberryList
from strawberry.types.field import StrawberryField

from deploybot.access import Action
from deploybot.schema.common import PublicError, UserError
from deploybot.schema.enums import ErrorCode


class Requires(BasePermission):
    """The caller's token gives `action` somewhere (the backend narrows it further)."""

    action: ClassVar[Action]

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return bool(info.context.principal.may_anywhere(self.action))

    @property
    def message(self) -> str:  # type: ignore[override]
        return f"this token may not {self.action.value} anything here"

    def on_unauthorized(self) -> None:
        raise PublicError(self.message, ErrorCode.FORBIDDEN.value)


class RequiresRead(Requires):
    action = Action.READ


class RequiresDeploy(Requires):
    action = Action.DEPLOY


class RequiresRecord(Requires):
    action = Action.RECORD


class RequiresAdmin(Requires):
    action = Action.ADMIN


class RequiresSecrets(Requires):
    """Kept secrets: the `secrets` action (or `admin`), never plain `read`."""

    action = Action.SECRETS


class _PayloadOnForbidden(PermissionExtension):
    """For mutations: a refusal is the payload with a FORBIDDEN `userErrors` entry."""

    payload: type[Any] | None = None

    def apply(self, field: StrawberryField) -> None:
        super().apply(field)
        assert isinstance(field.type, type) and dataclasses.is_dataclass(field.type)
        self.payload = field.type

    async def resolve_async(
        self, next_: Any, source: Any, info: Any, **kwargs: dict[str, Any]
    ) -> Any:
        """As Strawberry's, and a refusal is audited like the backend's own refusals."""
        for permission in self.permissions:
            if not permission.has_permission(source, info, **kwargs):
                assert isinstance(permission, Requires)
                await info.context.backend.audit_refusal(info.field_name, permission.message)
                return self._on_unauthorized(permission)
        return await next_(source, info, **kwargs)

    def _on_unauthorized(self, permission: BasePermission) -> Any:
        assert self.payload is not None and isinstance(permission, Requires)
        definition = self.payload.__strawberry_definition__
        values: dict[str, Any] = {
            f.python_name: [] if isinstance(f.type, StrawberryList) else None
            for f in definition.fields
            if f.base_resolver is None and f.init
        }
        values["user_errors"] = [
            UserError(field=None, message=permission.message, code=ErrorCode.FORBIDDEN)
        ]
        return self.payload(**values)


def allowed(permission: type[Requires]) -> list[FieldExtension]:
    """The extensions of a query or subscription field that needs `permission`."""
    return [PermissionExtension([permission()], use_directives=False)]


def allowed_mutation(permission: type[Requires]) -> list[FieldExtension]:
    """The extensions of a mutation that needs `permission` (refusals as userErrors)."""
    return [_PayloadOnForbidden([permission()], use_directives=False)]


def declared_permissions(field: StrawberryField) -> list[BasePermission]:
    """What a field declares (the test of every root field reads it)."""
    return [
        permission
        for extension in field.extensions
        if isinstance(extension, PermissionExtension)
        for permission in extension.permissions
    ]
