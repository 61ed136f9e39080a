"""Secrets deploybot keeps for applications: set, delete, list, and (for the runner only)
read back.

A value is sealed with the instance's key (`secretbox`) before it reaches the database and
opened only by the runner when it creates the Swarm secret; no answer, log line, event or
error carries it. A stack uses one as an external secret named `deploybot.<name>`.
"""

from __future__ import annotations

import re
from typing import Any, Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from deploybot.db.engine import Database
from deploybot.db.models import kept_secret_table
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.inputs import SecretRef, SetSecretRequest
from deploybot.records import SecretRecord
from deploybot.secretbox import SecretBox
from deploybot.times import utcnow

NAME: Final = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,40}[a-zA-Z0-9])?")
"""Short enough for `<application>_<name>-<digest>` to stay a valid Swarm name."""
MAX_VALUE_BYTES: Final = 500 * 1024
"""Swarm's limit on a secret's size."""


def _context(environment: str, application: str, name: str, version: int) -> str:
    """What a sealed value is bound to (AES-GCM associated data)."""
    return f"secret {environment}/{application}/{name} v{version}"


def _record(row: Any) -> SecretRecord:
    return SecretRecord(
        application=row.application,
        environment=row.environment,
        name=row.name,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def check_name(name: str, field: str = "name") -> None:
    if not NAME.fullmatch(name):
        raise DeploybotError(
            ErrorCode.INVALID_INPUT,
            f"secret name {name!r} must be 1-42 characters of [a-zA-Z0-9_.-],"
            " starting and ending with a letter or digit",
            field=field,
        )


def _check(request: SetSecretRequest) -> bytes:
    errors: list[DeploybotError] = []
    try:
        check_name(request.name)
    except DeploybotError as exc:
        errors.append(exc)
    if not request.application.strip():
        errors.append(
            DeploybotError(ErrorCode.INVALID_INPUT, "application is required", field="application")
        )
    value = request.value.encode("utf-8")
    if not value:
        errors.append(DeploybotError(ErrorCode.INVALID_INPUT, "value is empty", field="value"))
    elif len(value) > MAX_VALUE_BYTES:
        errors.append(
            DeploybotError(
                ErrorCode.INVALID_INPUT,
                f"value is {len(value)} bytes; Swarm secrets hold at most {MAX_VALUE_BYTES}",
                field="value",
            )
        )
    if errors:
        raise ValidationFailed(errors)
    return value


async def _store(
    db: Database, box: SecretBox, environment: str, request: SetSecretRequest, value: bytes
) -> bool:
    """Insert version 1 or bump the version; False when another writer came first."""
    t = kept_secret_table.c
    where = (
        t.environment == environment,
        t.application == request.application,
        t.name == request.name,
    )
    async with db.transaction() as session:
        row = (await session.execute(select(t.version).where(*where))).first()
        now = utcnow()
        version = 1 if row is None else int(row.version) + 1
        context = _context(environment, request.application, request.name, version)
        sealed = box.seal(value, context)
        if row is None:
            await session.execute(
                insert(kept_secret_table).values(
                    environment=environment,
                    application=request.application,
                    name=request.name,
                    version=version,
                    ciphertext=sealed,
                    created_at=now,
                    updated_at=now,
                )
            )
            return True
        changed = await session.execute(
            update(kept_secret_table)
            .where(*where, t.version == row.version)
            .values(version=version, ciphertext=sealed, updated_at=now)
        )
        return bool(getattr(changed, "rowcount", 0) == 1)


async def set_secret(
    db: Database, box: SecretBox, environment: str, request: SetSecretRequest
) -> SecretRecord:
    """Store a new value (version 1, or the next version of an existing secret)."""
    value = _check(request)
    for _ in range(5):  # concurrent writers: the loser tries again on top
        try:
            if not await _store(db, box, environment, request, value):
                continue
        except IntegrityError:
            continue
        found = await get_secret(db, environment, request.application, request.name)
        assert found is not None
        return found
    raise DeploybotError(
        ErrorCode.INVALID_INPUT, "the secret changed concurrently; try again", field="name"
    )


async def get_secret(
    db: Database, environment: str, application: str, name: str
) -> SecretRecord | None:
    t = kept_secret_table.c
    query = select(*[c for c in kept_secret_table.c if c.name != "ciphertext"]).where(
        t.environment == environment, t.application == application, t.name == name
    )
    async with db.connection() as connection:
        row = (await connection.execute(query)).first()
    return _record(row) if row is not None else None


async def delete_secret(db: Database, environment: str, ref: SecretRef) -> SecretRecord:
    """Forget a secret; Swarm secrets made from it stay while services or rollback
    targets use them (the next deployment's clean-up removes the rest)."""
    found = await get_secret(db, environment, ref.application, ref.name)
    if found is None:
        raise DeploybotError(
            ErrorCode.SECRET_NOT_FOUND,
            f"{ref.application} has no secret {ref.name!r} on {environment}",
            field="name",
        )
    t = kept_secret_table.c
    async with db.transaction() as connection:
        await connection.execute(
            delete(kept_secret_table).where(
                t.environment == environment, t.application == ref.application, t.name == ref.name
            )
        )
    return found


async def list_secrets(db: Database, environment: str, application: str) -> list[SecretRecord]:
    t = kept_secret_table.c
    query = (
        select(*[c for c in kept_secret_table.c if c.name != "ciphertext"])
        .where(t.environment == environment, t.application == application)
        .order_by(t.name)
    )
    async with db.connection() as connection:
        rows = (await connection.execute(query)).all()
    return [_record(row) for row in rows]


class KeptValue:
    """A kept secret's value for the runner: opened on demand, never printed."""

    def __init__(self, record: SecretRecord, sealed: bytes, box: SecretBox) -> None:
        self.record = record
        self.sealed = sealed
        self._box = box

    def __repr__(self) -> str:
        return f"KeptValue({self.record.application}/{self.record.name} v{self.record.version})"

    def reveal(self) -> bytes:
        r = self.record
        return self._box.open(
            self.sealed, _context(r.environment, r.application, r.name, r.version)
        )


async def kept_values(
    db: Database, box: SecretBox, environment: str, application: str, names: list[str]
) -> dict[str, KeptValue]:
    """The sealed values of `names` (those that exist) for the runner to create on Swarm."""
    if not names:
        return {}
    t = kept_secret_table.c
    query = select(kept_secret_table).where(
        t.environment == environment, t.application == application, t.name.in_(names)
    )
    async with db.connection() as connection:
        rows = (await connection.execute(query)).all()
    return {row.name: KeptValue(_record(row), bytes(row.ciphertext), box) for row in rows}
