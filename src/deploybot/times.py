"""Time as deploybot keeps it: aware UTC datetimes, RFC 3339 on the way in."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_rfc3339(value: str) -> datetime:
    """RFC 3339 date and time, with an offset (`Z`, `+07:00`) or without one (then UTC)."""
    text = value.strip()
    if len(text) < 19 or text[10] not in "Tt ":
        raise ValueError("expected a date and a time")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def as_utc(moment: datetime) -> datetime:
    """Times without an offset are UTC, as everywhere in deploybot."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from `start` to `end` (to now while it runs); None before it started."""
    if start is None:
        return None
    return round(((end or utcnow()) - start).total_seconds(), 3)
