from __future__ import annotations

import pytest

from deploybot.ids import InvalidId, decode_cursor, decode_id, encode_cursor, encode_id


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
