"""The seeds' shared formats: Go durations and RFC 3339 times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from deploybot.rest.common import go_duration, rfc3339


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (300, "5m0s"),
        (0, "0s"),
        (0.1, "100ms"),
        (1.5, "1.5s"),
        (59, "59s"),
        (3723, "1h2m3s"),
        (3600, "1h0m0s"),
        (None, None),
    ],
)
def test_go_duration(seconds: float | None, text: str | None) -> None:
    assert go_duration(seconds) == text


def test_rfc3339_is_utc_with_z() -> None:
    moment = datetime(2024, 1, 1, 2, 0, 0, 123, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2024-01-01T00:00:00Z"
    assert rfc3339(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00Z"
    assert rfc3339(None) is None
