"""Compose values read the way docker/cli's Go code reads them.

fmt.Sprint of scalars, Go durations, go-units sizes, rational CPU counts, docker's short port
and volume syntaxes, list-or-dict mappings, and Go's `omitempty` for the Engine API bodies.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

PROPAGATIONS: Final = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


def go_str(value: object) -> str:
    """fmt.Sprint of a YAML scalar: docker stringifies numbers in labels/env/options this way."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _go_float(value: float) -> str:
    """Go's %v for float64 (shortest digits, exponent form outside 1e-4..1e6), so 1.0 -> "1"."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    all_digits = "".join(map(str, digit_tuple))
    point = len(all_digits) + int(exponent)
    digits = all_digits.rstrip("0") or "0"
    prefix = "-" if value < 0 else ""
    exp10 = point - 1
    if exp10 < -4 or exp10 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


_DURATION_UNITS: Final = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_TERM: Final = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds: compose durations must carry a unit."""
    rest, sign = text, 1
    if rest[:1] in ("+", "-"):
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total, pos = 0, 0
    while pos < len(rest):
        match = _DURATION_TERM.match(rest, pos)
        assert match is not None  # the pattern can match the empty string
        whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
        if not whole and not fraction:
            raise ValueError(f"invalid duration {text!r}")
        if not unit:
            raise ValueError(f"missing unit in duration {text!r} (use e.g. '10s', '1m30s')")
        scale = _DURATION_UNITS.get(unit)
        if scale is None:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        pos = match.end()
    if total > 2**63 - 1:
        raise ValueError(f"invalid duration {text!r}: out of range")
    return sign * total


_BINARY_UNITS: Final = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_SIZE: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+) ?([A-Za-z]{0,3})")


def parse_bytes(value: object) -> int:
    """go-units RAMInBytes: '512k', '50M', '1.5g', '1GiB' (1024 multiples) or a byte count."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: must not be negative")
        return value
    text = str(value)
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid size {text!r} (use e.g. '512M', '1g')")
    number, suffix = float(match.group(1)), match.group(2).lower()
    if suffix in ("", "b"):
        return int(number)
    multiplier = _BINARY_UNITS.get(suffix[0])
    if multiplier is None or suffix[1:] not in ("", "i", "b", "ib"):
        raise ValueError(f"invalid size {text!r}: unknown suffix {suffix!r}")
    return int(number * multiplier)


def parse_cpus(value: object) -> int:
    """opts.ParseCPUs: a rational CPU count to NanoCPUs; numbers are accepted, not just strings."""
    text = value if isinstance(value, str) else go_str(value)
    try:
        nano = Fraction(text) * 1_000_000_000
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {text!r} as a rational number") from None
    if nano.denominator != 1:
        raise ValueError(f"{text!r} is too precise (at most 9 decimal places)")
    if nano < 0:
        raise ValueError(f"{text!r} must not be negative")
    return int(nano)


def parse_count(value: object) -> int:
    """A YAML number that must be a whole, non-negative count (healthcheck retries)."""
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{go_str(value)} is not a whole number")
    count = int(value) if isinstance(value, int | float) else -1
    if count < 0:
        raise ValueError("must not be negative")
    return count


def _port_range(text: str, what: str, raw: str) -> tuple[int, int]:
    """nat.ParsePortRange: 'N' or 'N-M' with 16-bit ports."""
    start_text, dash, end_text = text.partition("-")
    if not text or not start_text.isdigit() or (dash and not end_text.isdigit()):
        raise ValueError(f"invalid {what} {text!r} in port {raw!r}")
    start = int(start_text)
    end = int(end_text) if dash else start
    if start > 65535 or end > 65535 or end < start:
        raise ValueError(f"invalid {what} {text!r} in port {raw!r}")
    return start, end


def _split_port(raw: str) -> tuple[str, str, str]:
    """nat's splitParts: [ip:][host:]container, where the IP may itself contain colons."""
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def parse_port_spec(value: object) -> list[tuple[str, int, int]]:
    """Short port syntax as docker parses it: (protocol, target, published) per port.

    The host IP is checked but dropped: Swarm publishes on all addresses, as docker warns.
    A host range with a single container port publishes every host port of the range.
    """
    raw = str(value)
    ip, host, container = _split_port(raw)
    port_text, _, protocol = container.partition("/")
    protocol = (protocol.split("/")[0] or "tcp").lower()
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ValueError(f"invalid IP address {ip!r} in port {raw!r}") from None
    if not port_text:
        raise ValueError(f"no container port in {raw!r}")
    if protocol not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid protocol {protocol!r} in port {raw!r}")
    start, end = _port_range(port_text, "container port", raw)
    if start == 0:
        raise ValueError(f"invalid container port 0 in {raw!r}")
    if not host:
        return [(protocol, port, 0) for port in range(start, end + 1)]
    host_start, host_end = _port_range(host, "host port", raw)
    if start == end:
        return [(protocol, start, port) for port in range(host_start, host_end + 1)]
    if end - start != host_end - host_start:
        raise ValueError(f"container and host port ranges differ in size in {raw!r}")
    return [(protocol, start + i, host_start + i) for i in range(end - start + 1)]


def _is_windows_drive(buffer: str, char: str) -> bool:
    return char == ":" and len(buffer) == 1 and buffer.isalpha()


def parse_volume_spec(value: object) -> dict[str, Any]:
    """Short volume syntax ('src:dst[:opts]'), as docker's ParseVolume, in long-syntax form."""
    spec = str(value)
    if not spec:
        raise ValueError("empty volume spec")
    if len(spec) <= 2:
        return {"type": "volume", "target": spec}
    fields: list[str] = []
    buffer = ""
    for char in spec + "\0":
        if _is_windows_drive(buffer, char):
            buffer += char
        elif char in (":", "\0"):
            if not buffer:
                raise ValueError(f"invalid volume spec {spec!r}: empty section between colons")
            fields.append(buffer)
            buffer = ""
        else:
            buffer += char
    if len(fields) > 3:
        raise ValueError(f"invalid volume spec {spec!r}: too many colons")
    if len(fields) == 1:
        return {"type": "volume", "target": fields[0]}
    volume: dict[str, Any] = {"source": fields[0], "target": fields[1]}
    volume["type"] = "bind" if _is_file_path(fields[0]) else "volume"
    for option in fields[2].split(",") if len(fields) == 3 else []:
        if option in ("ro", "rw"):
            volume["read_only"] = option == "ro"
        elif option == "nocopy":
            volume["volume"] = {"nocopy": True}
        elif option in PROPAGATIONS:
            volume["bind"] = {"propagation": option}
    return volume


def _is_file_path(source: str) -> bool:
    """docker's isFilePath: a bind mount if the source looks like a path, else a named volume."""
    if source[0] in "./~":
        return True
    if len(source) == 1:
        return False
    return source.startswith("\\\\") or _is_windows_drive(source[0], source[1])


def shell_split(value: object) -> list[str]:
    """String commands are split like a POSIX shell would (docker uses google/shlex)."""
    return shlex.split(str(value))


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def mapping(value: object) -> dict[str, str]:
    """A list_or_dict where a missing value means "" (labels, sysctls, options)."""
    if isinstance(value, dict):
        return {str(k): "" if v is None else go_str(v) for k, v in value.items()}
    result: dict[str, str] = {}
    for item in value if isinstance(value, list) else []:
        key, _, text = str(item).partition("=")
        result[key] = text
    return result


def mapping_with_nil(value: object) -> dict[str, str | None]:
    """A list_or_dict where `KEY` without `=` is None (environment, build args)."""
    if isinstance(value, dict):
        return {str(k): None if v is None else go_str(v) for k, v in value.items()}
    result: dict[str, str | None] = {}
    for item in value if isinstance(value, list) else []:
        key, sep, text = str(item).partition("=")
        result[key] = text if sep else None
    return result


def is_zero(value: object) -> bool:
    """Go's idea of an empty value, for `json:",omitempty"`."""
    if value is None or value is False:
        return True
    if is_number(value):
        return value == 0
    return value in ("", [], {})


def compact(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop zero values, as Go's `json:",omitempty"` does on the Engine API types."""
    return {k: v for k, v in values.items() if not is_zero(v)}
