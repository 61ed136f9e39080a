"""Times as deploybot reads them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploybot.times import parse_rfc3339


def test_release_times_are_rfc3339_and_stored_in_utc() -> None:
    assert parse_rfc3339("2016-04-16T23:54:39Z") == datetime(2016, 4, 16, 23, 54, 39, tzinfo=UTC)
    assert parse_rfc3339("2016-04-16T23:54:39+07:00") == datetime(
        2016, 4, 16, 16, 54, 39, tzinfo=UTC
    )
    assert parse_rfc3339("2016-04-16T23:54:39") == datetime(  # no offset: UTC
        2016, 4, 16, 23, 54, 39, tzinfo=UTC
    )
    assert parse_rfc3339("2016-04-16 23:54:39.250-02:30") == datetime(
        2016, 4, 17, 2, 24, 39, 250000, tzinfo=UTC
    )
    for bad in ("2016-04-16", "2016-04-16T23:54:39Z07:00", "yesterday", "2016-13-01T00:00:00"):
        with pytest.raises(ValueError):
            parse_rfc3339(bad)
