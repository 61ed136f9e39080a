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


MAX_KEY = 2**63 - 1
"""Keys are 64-bit integers in both databases; a larger number names nothing."""


def parse_key(text: str, what: str = "ID") -> int:
    """A non-negative 64-bit key written in ASCII digits, else InvalidId."""
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()) or int(text) > MAX_KEY:
        raise InvalidId(f"not a valid {what}: {text[:40]!r} (a number up to {MAX_KEY})")
    return int(text)


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
    if not raw.startswith("k:"):
        raise InvalidId(f"not a valid cursor: {value!r}")
    return parse_key(raw[2:], "cursor")


def encode_keyset(*parts: int) -> str:
    """A cursor over a composite sort key (e.g. release time in microseconds, then id)."""
    raw = "s:" + ":".join(str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_keyset(value: str, size: int) -> tuple[int, ...]:
    raw = _b64decode(value, "cursor")
    parts = raw[2:].split(":")
    if not raw.startswith("s:") or len(parts) != size:
        raise InvalidId(f"not a valid cursor: {value!r}")
    try:
        keys = tuple(int(p) for p in parts)
    except ValueError:
        raise InvalidId(f"not a valid cursor: {value!r}") from None
    if any(abs(k) > MAX_KEY for k in keys):
        raise InvalidId(f"not a valid cursor: {value!r}")
    return keys
