"""Global object IDs and opaque pagination cursors.

IDs carry the environment (`Deployment:production:42`) so a relay can route a
`node(id:)` to the instance that owns it; both are base64 so clients treat
them as opaque, as GitHub's API asks them to.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass


class InvalidId(ValueError):
    pass


MAX_KEY = 2**63 - 1
"""The largest key the database can hold (BIGINT): a larger one names nothing."""


def parse_key(text: str, what: str = "ID") -> int:
    """A serial number (1..MAX_KEY) written in ASCII digits, or InvalidId."""
    if not (text.isascii() and text.isdigit()):
        raise InvalidId(f"not a valid {what}: {text!r}")
    if len(text) > 19 or not 0 < int(text) <= MAX_KEY:
        raise InvalidId(f"{what} out of range (1..{MAX_KEY}): {text[:40]!r}")
    return int(text)


def _bounded(value: int, what: str) -> int:
    if not -MAX_KEY <= value <= MAX_KEY:
        raise InvalidId(f"not a valid {what}: out of range")
    return value


@dataclass(frozen=True, slots=True)
class GlobalId:
    type_name: str
    environment: str
    key: int

    def encode(self) -> str:
        raw = f"{self.type_name}:{self.environment}:{self.key}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(value: str, what: str) -> str:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidId(f"not a valid {what}: {value!r}") from exc


def encode_id(type_name: str, environment: str, key: int) -> str:
    return GlobalId(type_name, environment, key).encode()


def decode_id(value: str) -> GlobalId:
    parts = _b64decode(value, "ID").split(":")
    if len(parts) != 3:
        raise InvalidId(f"not a valid ID: {value!r}")
    return GlobalId(parts[0], parts[1], parse_key(parts[2]))


def encode_cursor(key: int) -> str:
    return base64.urlsafe_b64encode(f"k:{key}".encode()).decode().rstrip("=")


def decode_cursor(value: str) -> int:
    raw = _b64decode(value, "cursor")
    if not raw.startswith("k:") or not (raw[2:].isascii() and raw[2:].isdigit()):
        raise InvalidId(f"not a valid cursor: {value!r}")
    return _bounded(int(raw[2:]), "cursor")


def encode_keyset(*parts: int) -> str:
    """A cursor over a composite sort key (e.g. release time in microseconds, then id)."""
    raw = "s:" + ":".join(str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_keyset(value: str, size: int) -> tuple[int, ...]:
    raw = _b64decode(value, "cursor")
    parts = raw[2:].split(":")
    if not raw.startswith("s:") or len(parts) != size or not all(p.isascii() for p in parts):
        raise InvalidId(f"not a valid cursor: {value!r}")
    try:
        return tuple(_bounded(int(p), "cursor") for p in parts)
    except ValueError:
        raise InvalidId(f"not a valid cursor: {value!r}") from None
