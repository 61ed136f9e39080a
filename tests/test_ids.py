from __future__ import annotations

import pytest

from deploybot.ids import (
    MAX_KEY,
    InvalidId,
    decode_cursor,
    decode_id,
    decode_keyset,
    encode_cursor,
    encode_id,
    encode_keyset,
    parse_key,
)
from deploybot.inputs import DeploymentRef


def test_global_id_round_trip_carries_the_environment() -> None:
    value = encode_id("Deployment", "production", 42)
    decoded = decode_id(value)
    assert (decoded.type_name, decoded.environment, decoded.key) == ("Deployment", "production", 42)
    assert "production" not in value  # opaque to clients


def test_cursor_round_trip() -> None:
    assert decode_cursor(encode_cursor(123456789)) == 123456789


@pytest.mark.parametrize("bad", ["", "!!!", encode_cursor(5), "RGVwbG95bWVudA"])
def test_invalid_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidId):
        decode_id(bad)


@pytest.mark.parametrize("bad", ["", "zz", encode_id("Deployment", "x", 1)])
def test_invalid_cursors_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidId):
        decode_cursor(bad)


def test_keys_out_of_the_databases_range_are_invalid() -> None:
    assert parse_key(str(MAX_KEY)) == MAX_KEY
    for bad in ["0", str(MAX_KEY + 1), "99999999999999999999999", "²", "-1", "1e3", " 1"]:
        with pytest.raises(InvalidId):
            parse_key(bad)
    with pytest.raises(InvalidId):
        decode_id(encode_id("Deployment", "x", MAX_KEY + 1))
    with pytest.raises(InvalidId):
        decode_cursor(encode_cursor(MAX_KEY + 1))
    with pytest.raises(InvalidId):
        decode_keyset(encode_keyset(1, MAX_KEY + 1), 2)
    assert decode_keyset(encode_keyset(-5, MAX_KEY), 2) == (-5, MAX_KEY)


def test_a_deployment_reference_is_a_number_in_range_or_a_global_id() -> None:
    assert DeploymentRef.parse(str(MAX_KEY)) == DeploymentRef(None, MAX_KEY)
    with pytest.raises(InvalidId, match="out of range"):
        DeploymentRef.parse("99999999999999999999999")
