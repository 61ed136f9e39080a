"""Secrets deploybot keeps: encrypted at rest (SQLite and PostgreSQL), versioned, listed
without values, bound to their row, and only for callers with `secrets` or `admin`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from deploybot.access import Principal, parse_grants
from deploybot.config import Settings
from deploybot.core import secrets
from deploybot.db.engine import Database
from deploybot.db.models import kept_secret_table
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.inputs import SecretRef, SetSecretRequest
from deploybot.instance import Instance
from deploybot.secretbox import SecretBox, SecretKeyError, load_key, new_key
from tests.conftest import both_databases

VALUE = "correct horse battery staple"


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(load_key(new_key(), Path("/nonexistent")))


@both_databases
async def test_values_are_encrypted_versioned_and_never_listed(
    database: Database, box: SecretBox
) -> None:
    first = await secrets.set_secret(
        database, box, "prod", SetSecretRequest("shop", "db_password", VALUE)
    )
    second = await secrets.set_secret(
        database, box, "prod", SetSecretRequest("shop", "db_password", VALUE + "!")
    )
    await secrets.set_secret(database, box, "prod", SetSecretRequest("shop", "api_key", "k"))
    await secrets.set_secret(database, box, "prod", SetSecretRequest("blog", "api_key", "b"))

    assert (first.version, second.version) == (1, 2)
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    listed = await secrets.list_secrets(database, "prod", "shop")
    assert [(s.name, s.version) for s in listed] == [("api_key", 1), ("db_password", 2)]
    assert VALUE not in repr(listed)
    async with database.connection() as connection:
        stored = (await connection.execute(select(kept_secret_table.c.ciphertext))).scalars().all()
    assert all(VALUE.encode() not in bytes(c) for c in stored)

    values = await secrets.kept_values(database, box, "prod", "shop", ["db_password", "nope"])
    assert list(values) == ["db_password"]
    assert values["db_password"].reveal() == (VALUE + "!").encode()
    assert VALUE not in repr(values)


@both_databases
async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(
    database: Database, box: SecretBox
) -> None:
    await secrets.set_secret(database, box, "prod", SetSecretRequest("shop", "a", VALUE))
    await secrets.set_secret(database, box, "prod", SetSecretRequest("shop", "b", "other"))
    t = kept_secret_table.c
    async with database.transaction() as session:
        sealed = (await session.execute(select(t.ciphertext).where(t.name == "a"))).scalar_one()
        await session.execute(
            update(kept_secret_table).where(t.name == "b").values(ciphertext=sealed)
        )
    values = await secrets.kept_values(database, box, "prod", "shop", ["b"])
    with pytest.raises(SecretKeyError, match="does not decrypt"):
        values["b"].reveal()
    other = SecretBox(load_key(new_key(), Path("/nonexistent")))
    with pytest.raises(SecretKeyError):
        (await secrets.kept_values(database, other, "prod", "shop", ["a"]))["a"].reveal()


async def test_delete_and_bad_input(database: Database, box: SecretBox) -> None:
    await secrets.set_secret(database, box, "prod", SetSecretRequest("shop", "a", VALUE))
    deleted = await secrets.delete_secret(database, "prod", SecretRef("shop", "a"))
    assert deleted.name == "a"
    assert await secrets.list_secrets(database, "prod", "shop") == []
    with pytest.raises(DeploybotError) as missing:
        await secrets.delete_secret(database, "prod", SecretRef("shop", "a"))
    assert missing.value.code is ErrorCode.SECRET_NOT_FOUND

    with pytest.raises(ValidationFailed) as bad:
        await secrets.set_secret(database, box, "prod", SetSecretRequest(" ", "-x-", ""))
    assert {(e.field, e.code) for e in bad.value.errors} == {
        ("name", ErrorCode.INVALID_INPUT),
        ("application", ErrorCode.INVALID_INPUT),
        ("value", ErrorCode.INVALID_INPUT),
    }
    too_big = "x" * (secrets.MAX_VALUE_BYTES + 1)
    with pytest.raises(ValidationFailed) as big:
        await secrets.set_secret(database, box, "prod", SetSecretRequest("shop", "a", too_big))
    assert too_big not in str(big.value.errors[0].message)


def test_request_repr_hides_the_value() -> None:
    assert VALUE not in repr(SetSecretRequest("shop", "a", VALUE))


def test_key_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_key(None, tmp_path / "work")
    assert (tmp_path / "work" / "secrets.key").stat().st_mode & 0o777 == 0o600
    assert load_key(None, tmp_path / "work") == first
    with pytest.raises(SecretKeyError, match="32 bytes"):
        load_key("c2hvcnQ=", tmp_path)
    with pytest.raises(SecretKeyError, match="base64"):
        load_key("not base64!!", tmp_path)


def _instance(tmp_path: Path, database_url: str) -> Instance:
    settings = Settings(
        database_url=database_url,
        environment="prod",
        work_dir=tmp_path,
        secrets_key=SecretStr(new_key()),
    )
    return Instance(settings)


@pytest.mark.parametrize(
    ("grants", "allowed"),
    [
        ((), False),
        (("read,deploy",), False),
        (("secrets:prod/shop",), True),
        (("secrets:prod/blog",), False),
        (("secrets:staging",), False),
        (("admin",), True),
    ],
)
async def test_only_secrets_or_admin_grants_may_touch_secrets(
    database: Database,
    empty_database_url: str,
    tmp_path: Path,
    grants: tuple[str, ...],
    allowed: bool,
) -> None:
    instance = _instance(tmp_path, empty_database_url)
    backend = instance.backend_for(Principal("t", parse_grants(grants), token_id=1))
    calls = [
        lambda: backend.set_secret(SetSecretRequest("shop", "a", VALUE)),
        lambda: backend.secrets("shop", None),
        lambda: backend.delete_secret(SecretRef("shop", "a")),
    ]
    try:
        for call in calls:
            if allowed:
                await call()
            else:
                with pytest.raises(DeploybotError) as refused:
                    await call()
                assert refused.value.code is ErrorCode.FORBIDDEN
                assert VALUE not in refused.value.message
    finally:
        await instance.db.dispose()
