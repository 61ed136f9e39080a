"""Turn a compose stack file into Docker Engine API specs, the way `docker stack deploy` does.

deploybot talks to the Engine API directly, so it has to redo what docker/cli's
`cli/compose/loader` and `cli/compose/convert` do: the same interpolation, the same
validation, and the same ServiceSpec / network bodies. A stack deployed by deploybot is
then indistinguishable from one deployed with the CLI (same names, same labels), and a
user's stack file means here what it means with `docker stack deploy`.

Everything here is pure: no Docker calls, no file access. Deliberate differences from the
CLI are few and noted where they happen (defaults suited to a Swarm without IPVS, errors
instead of silently dropping settings deploybot cannot honour).
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import posixpath
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

import yaml

__all__ = [
    "IMAGE_LABEL",
    "NAMESPACE_LABEL",
    "BuildSpec",
    "NetworkSpec",
    "ServiceSpec",
    "StackFile",
    "StackFileError",
    "network_specs",
    "parse_stack_file",
    "service_specs",
    "single_service_stack",
]

NAMESPACE_LABEL: Final = "com.docker.stack.namespace"
IMAGE_LABEL: Final = "com.docker.stack.image"
DEFAULT_NETWORK: Final = "default"
DEFAULT_NETWORK_DRIVER: Final = "overlay"

_SERVICE_NAME: Final = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_OBJECT_NAME: Final = re.compile(r"[a-zA-Z0-9._-]+")
_ENDPOINT_MODES: Final = ("vip", "dnsrr")
_PUBLISH_MODES: Final = ("ingress", "host")
_PROPAGATIONS: Final = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


# --------------------------------------------------------------------------- public types


class StackFileError(Exception):
    """Invalid stack file; names the file and the key path so the user knows what to fix."""

    def __init__(self, file: str, key: str | None, message: str) -> None:
        super().__init__(file, key, message)
        self.file = file
        self.key = key
        self.message = message

    def __str__(self) -> str:
        if self.key is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}: {self.key}: {self.message}"


@dataclass(frozen=True)
class BuildSpec:
    """What to build for a service with `build:`; paths are relative to the repository root."""

    service: str
    context: str
    dockerfile: str
    args: dict[str, str]
    target: str | None


@dataclass(frozen=True)
class StackFile:
    """A validated, interpolated stack file.

    `services` hold the compose definitions as written (after interpolation), except that
    `environment` is resolved to a plain mapping, because resolving it needs `env`.
    `volumes` (top-level volumes) are needed to convert mounts; `warnings` lists valid
    settings that Swarm ignores, which `docker stack deploy` prints too.
    """

    filename: str
    services: dict[str, dict[str, Any]]
    networks: dict[str, dict[str, Any]]
    builds: dict[str, BuildSpec]
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSpec:
    """Body for POST /services/create (or /services/{id}/update) for one compose service."""

    name: str
    service: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class NetworkSpec:
    """A network the stack uses; external ones must exist already and are not created."""

    name: str
    external: bool
    spec: dict[str, Any]


class _Invalid(Exception):
    """Raised by helpers that know the key path but not the file; wrapped at the API edge."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(key, message)
        self.key = key
        self.message = message


@contextmanager
def _reported_as(filename: str) -> Iterator[None]:
    """Turn internal errors into StackFileError naming `filename`."""
    try:
        yield
    except _Invalid as exc:
        raise StackFileError(filename, exc.key, exc.message) from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------- Go-compatible scalars


def _go_str(value: object) -> str:
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


def _parse_duration(text: str) -> int:
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


def _parse_bytes(value: object) -> int:
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


def _parse_cpus(value: object) -> int:
    """opts.ParseCPUs: a rational CPU count to NanoCPUs; numbers are accepted, not just strings."""
    text = value if isinstance(value, str) else _go_str(value)
    try:
        nano = Fraction(text) * 1_000_000_000
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {text!r} as a rational number") from None
    if nano.denominator != 1:
        raise ValueError(f"{text!r} is too precise (at most 9 decimal places)")
    if nano < 0:
        raise ValueError(f"{text!r} must not be negative")
    return int(nano)


def _parse_count(value: object) -> int:
    """A YAML number that must be a whole, non-negative count (healthcheck retries)."""
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{_go_str(value)} is not a whole number")
    count = int(value) if isinstance(value, int | float) else -1
    if count < 0:
        raise ValueError("must not be negative")
    return count


# --------------------------------------------------------------------------- ports and volumes


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


def _parse_port_spec(value: object) -> list[tuple[str, int, int]]:
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


def _parse_volume_spec(value: object) -> dict[str, Any]:
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
        elif option in _PROPAGATIONS:
            volume["bind"] = {"propagation": option}
    return volume


def _is_file_path(source: str) -> bool:
    """docker's isFilePath: a bind mount if the source looks like a path, else a named volume."""
    if source[0] in "./~":
        return True
    if len(source) == 1:
        return False
    return source.startswith("\\\\") or _is_windows_drive(source[0], source[1])


def _shell_split(value: object) -> list[str]:
    """String commands are split like a POSIX shell would (docker uses google/shlex)."""
    return shlex.split(str(value))


# --------------------------------------------------------------------------- schema


class _Schema:
    """A small JSON-schema subset: enough to validate compose v3 with key paths in errors."""

    label = "a value"

    def accepts(self, value: object) -> bool:
        """Whether the value has the right JSON type (used to pick a oneOf branch)."""
        return True

    def check(self, value: object, path: str) -> None:
        if not self.accepts(value):
            raise _Invalid(path or None, f"must be {self.label}")


class _Type(_Schema):
    def __init__(self, label: str, predicate: Callable[[object], bool]) -> None:
        self.label = label
        self._predicate = predicate

    def accepts(self, value: object) -> bool:
        return self._predicate(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Int(_Schema):
    label = "an integer"

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self._min = minimum
        self._max = maximum

    def accepts(self, value: object) -> bool:
        return _is_int(value)

    def check(self, value: object, path: str) -> None:
        super().check(value, path)
        assert isinstance(value, int)
        if self._min is not None and value < self._min:
            raise _Invalid(path, f"must be at least {self._min}")
        if self._max is not None and value > self._max:
            raise _Invalid(path, f"must be at most {self._max}")


class _Enum(_Schema):
    label = "a string"

    def __init__(self, *values: str) -> None:
        self._values = values

    def accepts(self, value: object) -> bool:
        return isinstance(value, str)

    def check(self, value: object, path: str) -> None:
        super().check(value, path)
        if value not in self._values:
            allowed = ", ".join(repr(v) for v in self._values)
            raise _Invalid(path, f"must be one of {allowed} (got {value!r})")


class _Parsed(_Schema):
    """A scalar with a format (duration, size, port...): validated by parsing it."""

    def __init__(
        self, parser: Callable[[Any], object], label: str, types: tuple[type, ...] = (str,)
    ) -> None:
        self._parser = parser
        self.label = label
        self._types = types

    def accepts(self, value: object) -> bool:
        return isinstance(value, self._types) and not isinstance(value, bool)

    def check(self, value: object, path: str) -> None:
        super().check(value, path)
        try:
            self._parser(value)
        except ValueError as exc:
            raise _Invalid(path, str(exc)) from None


class _Arr(_Schema):
    label = "a list"

    def __init__(self, items: _Schema, *, unique: bool = False) -> None:
        self._items = items
        self._unique = unique

    def accepts(self, value: object) -> bool:
        return isinstance(value, list)

    def check(self, value: object, path: str) -> None:
        super().check(value, path)
        assert isinstance(value, list)
        for index, item in enumerate(value):
            self._items.check(item, f"{path}[{index}]")
            if self._unique and item in value[:index]:
                raise _Invalid(f"{path}[{index}]", f"duplicate entry {item!r}")


class _Obj(_Schema):
    """A mapping with known keys; unknown keys are errors (with a did-you-mean hint)."""

    label = "a mapping"

    def __init__(
        self,
        props: Mapping[str, _Schema],
        *,
        required: Sequence[str] = (),
        extra: _Schema | None = None,
        allow_x: bool = False,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        self.props = dict(props)
        self._required = required
        self._extra = extra
        self._allow_x = allow_x
        self._hints = hints or {}

    def accepts(self, value: object) -> bool:
        return isinstance(value, dict)

    def check(self, value: object, path: str) -> None:
        super().check(value, path)
        assert isinstance(value, dict)
        for key in self._required:
            if key not in value:
                raise _Invalid(_join(path, key), "is required")
        for key, item in value.items():
            child = _join(path, key)
            if key in self.props:
                self.props[key].check(item, child)
            elif self._allow_x and key.startswith("x-"):
                continue
            elif self._extra is not None:
                self._extra.check(item, child)
            else:
                raise _Invalid(child, self._unknown(key))

    def _unknown(self, key: str) -> str:
        if key in self._hints:
            return f"not allowed: {self._hints[key]}"
        close = difflib.get_close_matches(key, list(self.props), n=1)
        return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"


class _MapOf(_Schema):
    """A mapping from free-form (optionally pattern-checked) names to values of one schema."""

    label = "a mapping"

    def __init__(self, values: _Schema, key_pattern: re.Pattern[str] | None = None) -> None:
        self._values = values
        self._key_pattern = key_pattern

    def accepts(self, value: object) -> bool:
        return isinstance(value, dict)

    def check(self, value: object, path: str) -> None:
        super().check(value, path)
        assert isinstance(value, dict)
        for key, item in value.items():
            child = _join(path, key)
            if self._key_pattern is not None and not self._key_pattern.fullmatch(key):
                raise _Invalid(child, f"invalid name: must match {self._key_pattern.pattern}")
            self._values.check(item, child)


class _OneOf(_Schema):
    """First alternative whose JSON type matches decides; its error is the one reported."""

    def __init__(self, *alternatives: _Schema) -> None:
        self._alternatives = alternatives
        labels = list(dict.fromkeys(alt.label for alt in alternatives))
        self.label = " or ".join(labels)

    def accepts(self, value: object) -> bool:
        return any(alt.accepts(value) for alt in self._alternatives)

    def check(self, value: object, path: str) -> None:
        for alternative in self._alternatives:
            if alternative.accepts(value):
                alternative.check(value, path)
                return
        raise _Invalid(path or None, f"must be {self.label}")


_ANY: Final = _Schema()
_STR: Final = _Type("a string", lambda v: isinstance(v, str))
_BOOL: Final = _Type("a boolean", lambda v: isinstance(v, bool))
_NUM: Final = _Type("a number", _is_number)
_NULL: Final = _Type("null", lambda v: v is None)
_UINT: Final = _Int(0)
_STRINGS: Final = _Arr(_STR, unique=True)
_STRING_OR_LIST: Final = _OneOf(_STR, _STRINGS)
_SCALAR: Final = _OneOf(_STR, _NUM, _NULL)
_LIST_OR_DICT: Final = _OneOf(_MapOf(_SCALAR), _STRINGS)
_OPTIONS: Final = _MapOf(_OneOf(_STR, _NUM))
_DURATION: Final = _Parsed(_parse_duration, "a duration string like '10s'")
_BYTES: Final = _Parsed(_parse_bytes, "a size like '512M'", (str, int))
_CPUS: Final = _Parsed(_parse_cpus, "a CPU count like '0.5'", (str, int, float))
_COMMAND: Final = _OneOf(_Parsed(_shell_split, "a string"), _Arr(_STR))

_HEALTHCHECK: Final = _Obj(
    {
        "disable": _BOOL,
        "interval": _DURATION,
        "retries": _Parsed(_parse_count, "a number", (int, float)),
        "test": _OneOf(_STR, _Arr(_STR)),
        "timeout": _DURATION,
        "start_period": _DURATION,
        "start_interval": _DURATION,
    }
)
_UPDATE_CONFIG: Final = _Obj(
    {
        "parallelism": _UINT,
        "delay": _DURATION,
        "failure_action": _Enum("continue", "pause", "rollback"),
        "monitor": _DURATION,
        "max_failure_ratio": _NUM,
        "order": _Enum("start-first", "stop-first"),
    }
)
_RESOURCES: Final = _Obj(
    {
        "limits": _Obj({"cpus": _CPUS, "memory": _BYTES, "pids": _UINT}),
        "reservations": _Obj(
            {
                "cpus": _CPUS,
                "memory": _BYTES,
                "generic_resources": _Arr(
                    _Obj({"discrete_resource_spec": _Obj({"kind": _STR, "value": _NUM})})
                ),
            }
        ),
        "memory_swap": _Int(),
        "memory_swappiness": _Int(),
    }
)
_DEPLOY: Final = _OneOf(
    _NULL,
    _Obj(
        {
            "mode": _Enum("replicated", "global", "replicated-job", "global-job"),
            "endpoint_mode": _Enum(*_ENDPOINT_MODES),
            "replicas": _UINT,
            "labels": _LIST_OR_DICT,
            "rollback_config": _UPDATE_CONFIG,
            "update_config": _UPDATE_CONFIG,
            "resources": _RESOURCES,
            "restart_policy": _Obj(
                {
                    "condition": _Enum("none", "on-failure", "any"),
                    "delay": _DURATION,
                    "max_attempts": _UINT,
                    "window": _DURATION,
                }
            ),
            "placement": _Obj(
                {
                    "constraints": _Arr(_STR),
                    "preferences": _Arr(_Obj({"spread": _STR})),
                    "max_replicas_per_node": _UINT,
                }
            ),
        }
    ),
)
_PORT: Final = _OneOf(
    _Parsed(_parse_port_spec, "a port like '8080:80'", (str, int)),
    _Obj(
        {
            "mode": _Enum(*_PUBLISH_MODES),
            "target": _Int(1, 65535),
            "published": _Int(0, 65535),
            "protocol": _Enum("tcp", "udp", "sctp"),
        },
        required=("target",),
    ),
)
_MOUNT: Final = _OneOf(
    _Parsed(_parse_volume_spec, "a volume like 'data:/var/lib/data'"),
    _Obj(
        {
            "type": _Enum("volume", "bind", "tmpfs"),
            "source": _STR,
            "target": _STR,
            "read_only": _BOOL,
            "consistency": _STR,
            "bind": _Obj({"propagation": _Enum(*_PROPAGATIONS)}, extra=_ANY),
            "volume": _Obj({"nocopy": _BOOL}, extra=_ANY),
            "tmpfs": _Obj({"size": _BYTES}, extra=_ANY),
        },
        required=("type", "target"),
    ),
)
_SERVICE_NETWORKS: Final = _OneOf(
    _STRINGS,
    _MapOf(
        _OneOf(
            _NULL,
            _Obj(
                {
                    "aliases": _STRINGS,
                    "driver_opts": _OPTIONS,
                    "ipv4_address": _STR,
                    "ipv6_address": _STR,
                }
            ),
        ),
        key_pattern=_OBJECT_NAME,
    ),
)
_BUILD: Final = _OneOf(
    _STR,
    _Obj(
        {
            "context": _STR,
            "dockerfile": _STR,
            "args": _LIST_OR_DICT,
            "labels": _LIST_OR_DICT,
            "cache_from": _STRINGS,
            "network": _STR,
            "target": _STR,
            "shm_size": _OneOf(_Int(), _STR),
            "extra_hosts": _LIST_OR_DICT,
        },
        allow_x=True,
    ),
)
_FILE_REFERENCES: Final = _Arr(_OneOf(_STR, _Obj({}, extra=_ANY)))

# Keys docker/cli refuses outright, with its explanations.
_FORBIDDEN: Final = {
    "extends": "support for `extends` is not implemented",
    "volume_driver": "define a volume with a driver in the top-level `volumes` instead",
    "volumes_from": "share a volume through the top-level `volumes` instead",
    "cpu_quota": "set resource limits using deploy.resources",
    "cpu_shares": "set resource limits using deploy.resources",
    "cpuset": "set resource limits using deploy.resources",
    "mem_limit": "set resource limits using deploy.resources",
    "memswap_limit": "set resource limits using deploy.resources",
}

# Service properties of the compose v3 schema (config_schema_v3.x, up to 3.14).
_SERVICE: Final = _Obj(
    {
        "build": _BUILD,
        "cap_add": _STRINGS,
        "cap_drop": _STRINGS,
        "cgroupns_mode": _STR,
        "cgroup_parent": _STR,
        "command": _COMMAND,
        "configs": _FILE_REFERENCES,
        "container_name": _STR,
        "credential_spec": _Obj({"config": _STR, "file": _STR, "registry": _STR}),
        "depends_on": _STRINGS,
        "deploy": _DEPLOY,
        "devices": _STRINGS,
        "dns": _STRING_OR_LIST,
        "dns_search": _STRING_OR_LIST,
        "domainname": _STR,
        "entrypoint": _COMMAND,
        "env_file": _STRING_OR_LIST,
        "environment": _LIST_OR_DICT,
        "expose": _Arr(_OneOf(_STR, _NUM), unique=True),
        "external_links": _STRINGS,
        "extra_hosts": _LIST_OR_DICT,
        "healthcheck": _HEALTHCHECK,
        "hostname": _STR,
        "image": _STR,
        "init": _BOOL,
        "ipc": _STR,
        "isolation": _STR,
        "labels": _LIST_OR_DICT,
        "links": _STRINGS,
        "logging": _Obj({"driver": _STR, "options": _MapOf(_SCALAR)}),
        "mac_address": _STR,
        "network_mode": _STR,
        "networks": _SERVICE_NETWORKS,
        "oom_score_adj": _Int(),
        "pid": _OneOf(_STR, _NULL),
        "ports": _Arr(_PORT, unique=True),
        "privileged": _BOOL,
        "profiles": _STRINGS,
        "read_only": _BOOL,
        "restart": _STR,
        "secrets": _FILE_REFERENCES,
        "security_opt": _STRINGS,
        "shm_size": _OneOf(_NUM, _STR),
        "stdin_open": _BOOL,
        "stop_grace_period": _DURATION,
        "stop_signal": _STR,
        "sysctls": _LIST_OR_DICT,
        "tmpfs": _STRING_OR_LIST,
        "tty": _BOOL,
        "ulimits": _MapOf(
            _OneOf(_Int(), _Obj({"hard": _Int(), "soft": _Int()}, required=("soft", "hard"))),
            key_pattern=re.compile(r"[a-z]+"),
        ),
        "user": _STR,
        "userns_mode": _STR,
        "volumes": _Arr(_MOUNT, unique=True),
        "working_dir": _STR,
    },
    allow_x=True,
    hints=_FORBIDDEN,
)

_EXTERNAL: Final = _OneOf(_BOOL, _Obj({"name": _STR}))
_NETWORK: Final = _OneOf(
    _NULL,
    _Obj(
        {
            "name": _STR,
            "driver": _STR,
            "driver_opts": _OPTIONS,
            "ipam": _Obj({"driver": _STR, "config": _Arr(_Obj({"subnet": _STR}))}),
            "external": _EXTERNAL,
            "internal": _BOOL,
            "attachable": _BOOL,
            "labels": _LIST_OR_DICT,
        },
        allow_x=True,
    ),
)
_VOLUME: Final = _OneOf(
    _NULL,
    _Obj(
        {
            "name": _STR,
            "driver": _STR,
            "driver_opts": _OPTIONS,
            "external": _EXTERNAL,
            "labels": _LIST_OR_DICT,
        },
        allow_x=True,
    ),
)
_TOP: Final = _Obj(
    {
        "version": _OneOf(_STR, _NUM),
        "services": _MapOf(_SERVICE, key_pattern=_SERVICE_NAME),
        "networks": _OneOf(_NULL, _MapOf(_NETWORK, key_pattern=_OBJECT_NAME)),
        "volumes": _OneOf(_NULL, _MapOf(_VOLUME, key_pattern=_OBJECT_NAME)),
        "secrets": _OneOf(_NULL, _MapOf(_ANY)),
        "configs": _OneOf(_NULL, _MapOf(_ANY)),
    },
    required=("services",),
    allow_x=True,
)

# Valid compose keys that `docker stack deploy` ignores ("Ignoring unsupported options").
_IGNORED_SERVICE_KEYS: Final = frozenset(
    {
        "cgroupns_mode",
        "cgroup_parent",
        "container_name",
        "depends_on",
        "devices",
        "domainname",
        "expose",
        "external_links",
        "ipc",
        "links",
        "mac_address",
        "network_mode",
        "pid",
        "privileged",
        "profiles",
        "security_opt",
        "shm_size",
        "tmpfs",
        "userns_mode",
    }
)
_IGNORED_BUILD_KEYS: Final = frozenset(
    {"labels", "cache_from", "network", "shm_size", "extra_hosts"}
)
_UNSUPPORTED_SERVICE_KEYS: Final = {
    "secrets": "secrets are not supported yet",
    "configs": "configs are not supported yet",
    "env_file": "env_file is not supported yet: put the variables under `environment`",
    "credential_spec": "credential_spec is not supported yet",
}


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that behaves like docker's YAML parser where it matters for compose files."""


# Go's yaml.v2 leaves dates as strings (e.g. an image tag 2024-01-01); so do we.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    """Reject duplicate keys (yaml.v2 does; PyYAML would silently keep the last one)."""
    data: dict[Any, Any] = {}
    yield data
    seen: list[object] = []
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.append(key)
    data.update(loader.construct_mapping(node, deep=True))


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _load_yaml(text: str) -> object:
    """Parse YAML; errors say where (line and column) and quote the offending line."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        if mark is None:
            raise _Invalid(None, f"invalid YAML: {problem}") from None
        lines = text.splitlines()
        source = lines[mark.line].strip() if mark.line < len(lines) else ""
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        quoted = f": {source!r}" if source else ""
        raise _Invalid(None, f"invalid YAML at {where}: {problem}{quoted}") from None
    except yaml.YAMLError as exc:
        raise _Invalid(None, f"invalid YAML: {exc}") from None


def _check_keys(value: object, path: str) -> None:
    """Mapping keys must be strings (`yes:` or `1:` keys are YAML booleans/ints)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Invalid(path or None, f"non-string key {key!r} (quote it)")
            _check_keys(item, _join(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_keys(item, f"{path}[{index}]")


# --------------------------------------------------------------------------- interpolation

_SUBSTITUTION: Final = r"[_a-z][_a-z0-9]*(?::?[-?][^}]*)?"
# docker/cli's template pattern, including its quirks ($VAR:-x works unbraced, too).
_TEMPLATE: Final = re.compile(
    rf"\$(?:(?P<escaped>\$)|(?P<named>{_SUBSTITUTION})|\{{(?P<braced>{_SUBSTITUTION})\}}|(?P<invalid>))",
    re.IGNORECASE,
)


def _substitute(template: str, env: Mapping[str, str]) -> str:
    """Expand $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e} and $$ like compose."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        expression = match.group("named") or match.group("braced")
        if not expression:
            raise ValueError(f"invalid interpolation format in {template!r} (use $$ for a $)")
        return _resolve_variable(expression, env)

    return _TEMPLATE.sub(replace, template)


def _resolve_variable(expression: str, env: Mapping[str, str]) -> str:
    """docker/cli's substitution functions, tried in its order (soft, hard, required)."""
    if ":-" in expression:
        name, default = expression.split(":-", 1)
        return env.get(name) or default
    if "-" in expression:
        name, default = expression.split("-", 1)
        return env.get(name, default)
    for separator, allow_empty in ((":?", False), ("?", True)):
        if separator in expression:
            name, message = expression.split(separator, 1)
            value = env.get(name)
            if value is None or (not value and not allow_empty):
                raise ValueError(f"required variable {name} is missing a value: {message}")
            return value
    return env.get(expression, "")


def _to_int(text: str) -> object:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f"invalid integer {text!r}")
    return int(text)


def _to_float(text: str) -> object:
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        raise ValueError(f"invalid number {text!r}")
    return float(text)


def _to_bool(text: str) -> object:
    lowered = text.lower()
    if lowered in ("y", "yes", "true", "on"):
        return True
    if lowered in ("n", "no", "false", "off"):
        return False
    raise ValueError(f"invalid boolean {text!r}")


def _service_path(*parts: str) -> tuple[str, ...]:
    return ("services", "*", *parts)


# docker/cli's interpolateTypeCastMapping: interpolated strings at these paths get typed.
_CASTS: Final[dict[tuple[str, ...], Callable[[str], object]]] = {
    _service_path("healthcheck", "retries"): _to_int,
    _service_path("healthcheck", "disable"): _to_bool,
    _service_path("deploy", "replicas"): _to_int,
    _service_path("deploy", "update_config", "parallelism"): _to_int,
    _service_path("deploy", "update_config", "max_failure_ratio"): _to_float,
    _service_path("deploy", "rollback_config", "parallelism"): _to_int,
    _service_path("deploy", "rollback_config", "max_failure_ratio"): _to_float,
    _service_path("deploy", "restart_policy", "max_attempts"): _to_int,
    _service_path("deploy", "placement", "max_replicas_per_node"): _to_int,
    _service_path("ports", "[]", "target"): _to_int,
    _service_path("ports", "[]", "published"): _to_int,
    _service_path("ulimits", "*"): _to_int,
    _service_path("ulimits", "*", "hard"): _to_int,
    _service_path("ulimits", "*", "soft"): _to_int,
    _service_path("privileged"): _to_bool,
    _service_path("read_only"): _to_bool,
    _service_path("stdin_open"): _to_bool,
    _service_path("tty"): _to_bool,
    _service_path("volumes", "[]", "read_only"): _to_bool,
    _service_path("volumes", "[]", "volume", "nocopy"): _to_bool,
    ("networks", "*", "external"): _to_bool,
    ("networks", "*", "internal"): _to_bool,
    ("networks", "*", "attachable"): _to_bool,
    ("volumes", "*", "external"): _to_bool,
    ("secrets", "*", "external"): _to_bool,
    ("configs", "*", "external"): _to_bool,
}


def _cast_for(path: tuple[str, ...]) -> Callable[[str], object] | None:
    for pattern, cast in _CASTS.items():
        if len(pattern) == len(path) and all(
            p in ("*", s) for p, s in zip(pattern, path, strict=True)
        ):
            return cast
    return None


def _interpolate(
    value: object, path: tuple[str, ...], shown: str, env: Mapping[str, str]
) -> object:
    """Interpolate every string value (not keys), then type-cast where docker does."""
    if isinstance(value, str):
        try:
            expanded = _substitute(value, env)
        except ValueError as exc:
            raise _Invalid(shown or None, str(exc)) from None
        cast = _cast_for(path)
        if expanded == value or cast is None:
            return expanded
        try:
            return cast(expanded)
        except ValueError as exc:
            raise _Invalid(shown, f"failed to cast to expected type: {exc}") from None
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), _join(shown, k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [
            _interpolate(item, (*path, "[]"), f"{shown}[{index}]", env)
            for index, item in enumerate(value)
        ]
    return value


# --------------------------------------------------------------------------- compose mappings


def _mapping(value: object) -> dict[str, str]:
    """A list_or_dict where a missing value means "" (labels, sysctls, options)."""
    if isinstance(value, dict):
        return {str(k): "" if v is None else _go_str(v) for k, v in value.items()}
    result: dict[str, str] = {}
    for item in value if isinstance(value, list) else []:
        key, _, text = str(item).partition("=")
        result[key] = text
    return result


def _mapping_with_nil(value: object) -> dict[str, str | None]:
    """A list_or_dict where `KEY` without `=` is None (environment, build args)."""
    if isinstance(value, dict):
        return {str(k): None if v is None else _go_str(v) for k, v in value.items()}
    result: dict[str, str | None] = {}
    for item in value if isinstance(value, list) else []:
        key, sep, text = str(item).partition("=")
        result[key] = text if sep else None
    return result


def _resolve_environment(value: object, env: Mapping[str, str]) -> dict[str, str]:
    """docker/cli's resolveEnvironment: `KEY` (or `KEY=`) takes KEY from `env` when set.

    Unlike the CLI, which would pass a bare `KEY` to the engine, an unresolved `KEY` is
    dropped: the server's environment is not the user's shell, so there is nothing to pass.
    """
    resolved: dict[str, str] = {}
    for key, text in _mapping_with_nil(value).items():
        if not text and key in env:
            resolved[key] = env[key]
        elif text is not None:
            resolved[key] = text
    return dict(sorted(resolved.items()))


def _command(value: object) -> list[str]:
    if isinstance(value, str):
        return _shell_split(value)
    return [str(item) for item in value] if isinstance(value, list) else []


def _string_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value] if isinstance(value, list) else []


def _is_zero(value: object) -> bool:
    """Go's idea of an empty value, for `json:",omitempty"`."""
    if value is None or value is False:
        return True
    if _is_number(value):
        return value == 0
    return value in ("", [], {})


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop zero values, as Go's `json:",omitempty"` does on the Engine API types."""
    return {k: v for k, v in values.items() if not _is_zero(v)}


# --------------------------------------------------------------------------- top-level objects


@dataclass(frozen=True)
class _Resolved:
    """A top-level network or volume with its engine name decided."""

    key: str
    name: str
    external: bool
    config: dict[str, Any]


def _resolve(key: str, config: Mapping[str, Any], namespace: str) -> _Resolved:
    """Engine name of a network/volume: `name:`, external name, or `<namespace>_<key>`."""
    external = config.get("external")
    if external is True or isinstance(external, dict):
        external_name = external.get("name") if isinstance(external, dict) else None
        name = str(external_name or config.get("name") or key)
        return _Resolved(key, name, True, dict(config))
    return _Resolved(key, str(config.get("name") or f"{namespace}_{key}"), False, dict(config))


def _check_external(kind: str, definitions: Mapping[str, Mapping[str, Any]]) -> None:
    """docker's LoadNetworks/LoadVolumes conflicts for external objects."""
    for key, config in definitions.items():
        external = config.get("external")
        if not (external is True or isinstance(external, dict)):
            continue
        path = f"{kind}.{key}"
        if isinstance(external, dict) and external.get("name") and config.get("name"):
            raise _Invalid(path, "external.name and name conflict; only use name")
        if kind == "volumes":
            for conflicting in ("driver", "driver_opts", "labels"):
                if config.get(conflicting):
                    raise _Invalid(f"{path}.{conflicting}", "cannot be used with external: true")


def _network_defs(stack: StackFile, namespace: str) -> dict[str, _Resolved]:
    defs = {key: _resolve(key, config, namespace) for key, config in stack.networks.items()}
    defs.setdefault(DEFAULT_NETWORK, _resolve(DEFAULT_NETWORK, {}, namespace))
    return defs


def _volume_defs(stack: StackFile, namespace: str) -> dict[str, _Resolved]:
    return {key: _resolve(key, config, namespace) for key, config in stack.volumes.items()}


def _service_networks(definition: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A service's networks as {key: settings}; none listed means the stack's default network."""
    raw = definition.get("networks")
    entries: dict[str, dict[str, Any]]
    if isinstance(raw, list):
        entries = {str(name): {} for name in raw}
    elif isinstance(raw, dict):
        entries = {str(k): dict(v) if isinstance(v, dict) else {} for k, v in raw.items()}
    else:
        entries = {}
    return entries or {DEFAULT_NETWORK: {}}


def _used_networks(stack: StackFile) -> list[str]:
    used: dict[str, None] = {}
    for service in sorted(stack.services):
        used.update(dict.fromkeys(_service_networks(stack.services[service])))
    return list(used)


def _network_body(net: _Resolved, namespace: str) -> dict[str, Any]:
    """POST /networks/create body, as docker's convert.Networks + createNetworks send it."""
    config = net.config
    body: dict[str, Any] = {
        "Name": net.name,
        "Driver": str(config.get("driver") or DEFAULT_NETWORK_DRIVER),
        "Attachable": bool(config.get("attachable", False)),
        "Internal": bool(config.get("internal", False)),
        "Labels": {**_mapping(config.get("labels")), NAMESPACE_LABEL: namespace},
        "Options": {str(k): _go_str(v) for k, v in (config.get("driver_opts") or {}).items()},
    }
    ipam = config.get("ipam") or {}
    if ipam.get("driver") or ipam.get("config"):
        body["IPAM"] = {
            "Driver": str(ipam.get("driver") or ""),
            "Config": [{"Subnet": str(c.get("subnet", ""))} for c in ipam.get("config") or []],
        }
    return body


# --------------------------------------------------------------------------- service conversion


def _is_user_defined_network(name: str) -> bool:
    """docker adds the service name as alias only on user-defined networks."""
    return name not in ("default", "bridge", "host", "none") and not name.startswith("container:")


def _attachments(
    definition: Mapping[str, Any], networks: Mapping[str, _Resolved], service: str, path: str
) -> list[dict[str, Any]]:
    attachments: list[dict[str, Any]] = []
    for key, settings in _service_networks(definition).items():
        net = networks.get(key)
        if net is None:
            raise _Invalid(f"{path}.networks", f"undefined network {key!r} (add it to `networks:`)")
        aliases = [str(a) for a in settings.get("aliases") or []]
        if _is_user_defined_network(net.name):
            aliases.append(service)
        options = {str(k): _go_str(v) for k, v in (settings.get("driver_opts") or {}).items()}
        attachments.append(
            _compact({"Target": net.name, "Aliases": aliases, "DriverOpts": options})
        )
    return sorted(attachments, key=lambda a: str(a["Target"]))


def _ports(
    raw: Sequence[Any], publish_default: str, endpoint_mode: str, path: str
) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    for item in raw:
        if isinstance(item, dict):
            ports.append(
                _port(
                    str(item.get("protocol") or "tcp"),
                    int(item["target"]),
                    int(item.get("published") or 0),
                    str(item.get("mode") or publish_default),
                )
            )
        else:
            ports.extend(_port(p, t, pub, publish_default) for p, t, pub in _parse_port_spec(item))
    if endpoint_mode == "dnsrr":
        for port in ports:
            if port["PublishMode"] == "ingress":
                raise _Invalid(
                    f"{path}.ports",
                    f"port {port['TargetPort']} is published in ingress mode, which needs "
                    "endpoint_mode vip; use `mode: host` (long syntax) or endpoint_mode: vip",
                )
    return sorted(
        ports,
        key=lambda p: (p.get("PublishedPort", 0), p["TargetPort"], p["Protocol"], p["PublishMode"]),
    )


def _port(protocol: str, target: int, published: int, mode: str) -> dict[str, Any]:
    return _compact(
        {
            "Protocol": protocol,
            "TargetPort": target,
            "PublishedPort": published,
            "PublishMode": mode,
        }
    )


def _endpoint_spec(
    definition: Mapping[str, Any],
    deploy: Mapping[str, Any],
    endpoint_default: str,
    publish_default: str,
    path: str,
) -> dict[str, Any]:
    mode = str(deploy.get("endpoint_mode") or endpoint_default).lower()
    ports = _ports(definition.get("ports") or [], publish_default, mode, path)
    return _compact({"Mode": mode, "Ports": ports})


def _mode(deploy: Mapping[str, Any], path: str) -> dict[str, Any]:
    """convertDeployMode; unlike docker (which leaves it to the engine) replicas default to 1."""
    mode = str(deploy.get("mode") or "replicated")
    replicas = deploy.get("replicas")
    if mode in ("global", "global-job") and replicas is not None:
        raise _Invalid(
            f"{path}.deploy.replicas",
            "replicas can only be used with replicated or replicated-job mode",
        )
    if mode == "global":
        return {"Global": {}}
    if mode == "global-job":
        return {"GlobalJob": {}}
    if mode == "replicated-job":
        job = {} if replicas is None else {"MaxConcurrent": replicas, "TotalCompletions": replicas}
        return {"ReplicatedJob": job}
    return {"Replicated": {"Replicas": 1 if replicas is None else int(replicas)}}


def _update_config(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """convertUpdateConfig: absent stays absent; present gets parallelism 1 unless given."""
    if config is None:
        return None
    delay = _parse_duration(config["delay"]) if "delay" in config else 0
    monitor = _parse_duration(config["monitor"]) if "monitor" in config else 0
    update: dict[str, Any] = {"Parallelism": int(config.get("parallelism", 1))}
    update.update(
        _compact(
            {"Delay": delay, "FailureAction": config.get("failure_action"), "Monitor": monitor}
        )
    )
    update["MaxFailureRatio"] = config.get("max_failure_ratio", 0)
    update["Order"] = str(config.get("order", ""))
    return update


def _restart_policy(
    definition: Mapping[str, Any], deploy: Mapping[str, Any], path: str
) -> dict[str, Any] | None:
    """convertRestartPolicy: deploy.restart_policy wins, else the legacy `restart:`."""
    policy = deploy.get("restart_policy")
    if policy is not None:
        result = _compact({"Condition": policy.get("condition")})
        for key, name in (("delay", "Delay"), ("window", "Window")):
            if key in policy:
                result[name] = _parse_duration(policy[key])
        if "max_attempts" in policy:
            result["MaxAttempts"] = int(policy["max_attempts"])
        return result
    restart = definition.get("restart")
    return _legacy_restart(str(restart), f"{path}.restart") if restart else None


def _legacy_restart(restart: str, path: str) -> dict[str, Any] | None:
    """opts.ParseRestartPolicy mapped to swarm conditions, as docker/cli does."""
    name, colon, count_text = restart.partition(":")
    if colon and not name:
        raise _Invalid(path, "invalid restart policy: no policy before the colon")
    if count_text and not re.fullmatch(r"[+-]?\d+", count_text):
        raise _Invalid(path, "invalid restart policy: maximum retry count must be an integer")
    count = int(count_text) if count_text else 0
    if count < 0:
        raise _Invalid(path, "invalid restart policy: maximum retry count cannot be negative")
    if name in ("no", ""):
        return None
    conditions = {"always": "any", "unless-stopped": "any", "on-failure": "on-failure"}
    if name not in conditions:
        raise _Invalid(
            path, f"unknown restart policy {name!r} (use no, always, on-failure or unless-stopped)"
        )
    return _compact({"Condition": conditions[name], "MaxAttempts": count})


def _resources(deploy: Mapping[str, Any]) -> dict[str, Any]:
    """convertResources: always present (possibly empty), as docker sends it."""
    source = deploy.get("resources") or {}
    resources: dict[str, Any] = {}
    for key, name in (("limits", "Limits"), ("reservations", "Reservations")):
        if source.get(key) is not None:
            resources[name] = _resource(source[key])
    return resources


def _resource(config: Mapping[str, Any]) -> dict[str, Any]:
    """Limits or reservations (the schema allows pids only in limits, generic only in the other)."""
    return _compact(
        {
            "NanoCPUs": _parse_cpus(config["cpus"]) if "cpus" in config else 0,
            "MemoryBytes": _parse_bytes(config["memory"]) if "memory" in config else 0,
            "Pids": int(config.get("pids", 0)),
            "GenericResources": [_generic(r) for r in config.get("generic_resources") or []],
        }
    )


def _generic(resource: Mapping[str, Any]) -> dict[str, Any]:
    spec = resource.get("discrete_resource_spec")
    if spec is None:
        return {}
    kind, value = str(spec.get("kind", "")), int(spec.get("value", 0))
    return {"DiscreteResourceSpec": {"Kind": kind, "Value": value}}


def _placement(deploy: Mapping[str, Any]) -> dict[str, Any]:
    placement = deploy.get("placement") or {}
    preferences = [
        {"Spread": {"SpreadDescriptor": str(p.get("spread", ""))}}
        for p in placement.get("preferences") or []
    ]
    return _compact(
        {
            "Constraints": [str(c) for c in placement.get("constraints") or []],
            "Preferences": preferences,
            "MaxReplicas": int(placement.get("max_replicas_per_node", 0)),
        }
    )


def _healthcheck(config: Mapping[str, Any] | None, path: str) -> dict[str, Any] | None:
    """convertHealthcheck: `disable: true` means Test ["NONE"]; a string test runs in a shell."""
    if config is None:
        return None
    test = config.get("test")
    tests = ["CMD-SHELL", test] if isinstance(test, str) else [str(t) for t in test or []]
    if config.get("disable"):
        if tests:
            raise _Invalid(f"{path}.healthcheck", "test and disable can't be set at the same time")
        return {"Test": ["NONE"]}
    durations = {
        name: _parse_duration(config[key]) if key in config else 0
        for key, name in (
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("start_period", "StartPeriod"),
            ("start_interval", "StartInterval"),
        )
    }
    retries = _parse_count(config["retries"]) if "retries" in config else 0
    return _compact({"Test": tests, **durations, "Retries": retries})


def _hosts(value: object, path: str) -> list[str]:
    """convertExtraHosts: 'host:ip' (or a mapping) to the engine's 'ip host' form."""
    if isinstance(value, dict):
        entries = sorted(f"{k}:{_go_str(v)}" for k, v in value.items() if v is not None)
    else:
        entries = _string_list(value)
    hosts = []
    for index, entry in enumerate(entries):
        host, colon, ip = entry.partition(":")
        if not colon:
            # docker silently drops such entries; an error is kinder.
            raise _Invalid(f"{path}.extra_hosts[{index}]", f"{entry!r} must be 'hostname:ip'")
        hosts.append(f"{ip} {host}")
    return hosts


def _dns_config(definition: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    nameservers = _string_list(definition.get("dns"))
    for index, server in enumerate(nameservers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise _Invalid(f"{path}.dns[{index}]", f"{server!r} is not an IP address") from None
    config = _compact(
        {"Nameservers": nameservers, "Search": _string_list(definition.get("dns_search"))}
    )
    return config or None


def _capabilities(add: object, drop: object) -> tuple[list[str], list[str]]:
    """opts.EffectiveCapAddCapDrop: CAP_ prefix, upper case, ALL wins, adding beats dropping."""

    def normalise(values: object) -> set[str]:
        names = {str(v).strip().upper() for v in values} if isinstance(values, list) else set()
        return {n if n in ("ALL", "RESET") or n.startswith("CAP_") else f"CAP_{n}" for n in names}

    added, dropped = normalise(add), normalise(drop)
    if "ALL" in added:
        added = {"ALL"}
    if "ALL" in dropped:
        dropped = {"ALL"}
    return sorted(added), sorted(dropped - added)


def _ulimits(value: object) -> list[dict[str, Any]]:
    limits = []
    for name, limit in sorted(value.items()) if isinstance(value, dict) else []:
        soft, hard = (limit, limit) if _is_int(limit) else (limit["soft"], limit["hard"])
        limits.append({"Name": str(name), "Soft": int(soft), "Hard": int(hard)})
    return limits


def _mounts(
    definition: Mapping[str, Any], volumes: Mapping[str, _Resolved], namespace: str, path: str
) -> list[dict[str, Any]]:
    mounts = []
    for index, item in enumerate(definition.get("volumes") or []):
        volume = item if isinstance(item, dict) else _parse_volume_spec(item)
        mounts.append(_mount(volume, volumes, namespace, f"{path}.volumes[{index}]"))
    return mounts


def _mount(
    volume: Mapping[str, Any], volumes: Mapping[str, _Resolved], namespace: str, path: str
) -> dict[str, Any]:
    """convertVolumeToMount for volume, bind and tmpfs mounts."""
    kind = str(volume["type"])
    source = str(volume.get("source") or "")
    for option in ("bind", "volume", "tmpfs"):
        if option in volume and option != kind:
            raise _Invalid(path, f"{option} options are incompatible with type {kind}")
    mount = _compact(
        {
            "Type": kind,
            "Source": source,
            "Target": str(volume.get("target") or ""),
            "ReadOnly": bool(volume.get("read_only", False)),
            "Consistency": volume.get("consistency"),
        }
    )
    if kind == "bind":
        return {**mount, **_bind_options(volume, source, path)}
    if kind == "tmpfs":
        if source:
            raise _Invalid(path, "tmpfs mounts cannot have a source")
        size = (volume.get("tmpfs") or {}).get("size")
        options = _compact({"SizeBytes": _parse_bytes(size) if size is not None else 0})
        return {**mount, "TmpfsOptions": options} if "tmpfs" in volume else mount
    if not source:
        return mount  # anonymous volume
    return {**mount, **_volume_options(volume, volumes, source, namespace, path)}


def _bind_options(volume: Mapping[str, Any], source: str, path: str) -> dict[str, Any]:
    if not source:
        raise _Invalid(path, "bind mounts need a source")
    if not posixpath.isabs(source):
        raise _Invalid(
            path,
            f"bind mount source {source!r} must be an absolute path: "
            "a Swarm task has no working directory to resolve it against",
        )
    if "bind" not in volume:
        return {}
    return {"BindOptions": _compact({"Propagation": (volume.get("bind") or {}).get("propagation")})}


def _volume_options(
    volume: Mapping[str, Any],
    volumes: Mapping[str, _Resolved],
    source: str,
    namespace: str,
    path: str,
) -> dict[str, Any]:
    """Named volumes: namespaced name, stack labels and driver, unless external."""
    stack_volume = volumes.get(source)
    if stack_volume is None:
        raise _Invalid(path, f"undefined volume {source!r} (add it to the top-level `volumes:`)")
    options: dict[str, Any] = _compact(
        {"NoCopy": bool((volume.get("volume") or {}).get("nocopy", False))}
    )
    if not stack_volume.external:
        config = stack_volume.config
        options["Labels"] = {**_mapping(config.get("labels")), NAMESPACE_LABEL: namespace}
        driver_opts = config.get("driver_opts")
        if config.get("driver") or driver_opts is not None:
            options["DriverConfig"] = _compact(
                {
                    "Name": config.get("driver"),
                    "Options": {str(k): _go_str(v) for k, v in (driver_opts or {}).items()},
                }
            )
    return {"Source": stack_volume.name, "VolumeOptions": options}


@dataclass(frozen=True)
class _Target:
    """Everything a service conversion needs besides the compose definition."""

    namespace: str
    image: str
    labels: Mapping[str, str]
    endpoint_mode: str
    publish_mode: str
    networks: Mapping[str, _Resolved]
    volumes: Mapping[str, _Resolved]


def _container_spec(definition: Mapping[str, Any], target: _Target, path: str) -> dict[str, Any]:
    cap_add, cap_drop = _capabilities(definition.get("cap_add"), definition.get("cap_drop"))
    environment = definition.get("environment") or {}
    spec = _compact(
        {
            "Image": target.image,
            "Labels": {**_mapping(definition.get("labels")), NAMESPACE_LABEL: target.namespace},
            "Command": _command(definition.get("entrypoint")),
            "Args": _command(definition.get("command")),
            "Hostname": definition.get("hostname"),
            "Env": [f"{k}={v}" for k, v in sorted(_mapping(environment).items())],
            "Dir": definition.get("working_dir"),
            "User": definition.get("user"),
            "StopSignal": definition.get("stop_signal"),
            "TTY": definition.get("tty"),
            "OpenStdin": definition.get("stdin_open"),
            "ReadOnly": definition.get("read_only"),
            "Mounts": _mounts(definition, target.volumes, target.namespace, path),
            "Healthcheck": _healthcheck(definition.get("healthcheck"), path),
            "Hosts": _hosts(definition.get("extra_hosts"), path),
            "DNSConfig": _dns_config(definition, path),
            "Isolation": definition.get("isolation"),
            "Sysctls": _mapping(definition.get("sysctls")),
            "CapabilityAdd": cap_add,
            "CapabilityDrop": cap_drop,
            "Ulimits": _ulimits(definition.get("ulimits")),
            "OomScoreAdj": definition.get("oom_score_adj"),
        }
    )
    # Pointers in the Go types: sent whenever set, even when false/zero.
    if "init" in definition:
        spec["Init"] = bool(definition["init"])
    if "stop_grace_period" in definition:
        spec["StopGracePeriod"] = _parse_duration(definition["stop_grace_period"])
    return spec


def _task_template(
    definition: Mapping[str, Any],
    deploy: Mapping[str, Any],
    service: str,
    target: _Target,
    path: str,
) -> dict[str, Any]:
    template: dict[str, Any] = {
        "ContainerSpec": _container_spec(definition, target, path),
        "Resources": _resources(deploy),
    }
    restart = _restart_policy(definition, deploy, path)
    if restart is not None:
        template["RestartPolicy"] = restart
    template["Placement"] = _placement(deploy)
    template["Networks"] = _attachments(definition, target.networks, service, path)
    logging = definition.get("logging")
    if logging is not None:
        template["LogDriver"] = _compact(
            {"Name": logging.get("driver"), "Options": _mapping(logging.get("options"))}
        )
    return template


def _service_spec(definition: Mapping[str, Any], service: str, target: _Target) -> dict[str, Any]:
    """convert.Service: one compose service to an Engine API ServiceSpec."""
    path = f"services.{service}"
    deploy = definition.get("deploy") or {}
    labels = {
        **_mapping(deploy.get("labels")),
        **target.labels,
        NAMESPACE_LABEL: target.namespace,
        IMAGE_LABEL: target.image,
    }
    spec: dict[str, Any] = {
        "Name": f"{target.namespace}_{service}",
        "Labels": labels,
        "TaskTemplate": _task_template(definition, deploy, service, target, path),
        "Mode": _mode(deploy, path),
    }
    for key, name in (("update_config", "UpdateConfig"), ("rollback_config", "RollbackConfig")):
        config = _update_config(deploy.get(key))
        if config is not None:
            spec[name] = config
    spec["EndpointSpec"] = _endpoint_spec(
        definition, deploy, target.endpoint_mode, target.publish_mode, path
    )
    return spec


# --------------------------------------------------------------------------- parsing


def _check_version(version: object) -> None:
    """`docker stack deploy` only reads compose file format 3.x (or no version at all)."""
    if version is None:
        return
    text = _go_str(version)
    if text.split(".")[0] != "3":
        raise _Invalid("version", f"unsupported compose file version {text!r}: use 3.x")


def _reject_unsupported(document: Mapping[str, Any], services: Mapping[str, Any]) -> None:
    """Settings deploybot cannot honour yet are errors rather than silently dropped."""
    for section in ("secrets", "configs"):
        if document.get(section):
            raise _Invalid(section, f"{section} are not supported yet")
    for name, definition in services.items():
        for key, message in _UNSUPPORTED_SERVICE_KEYS.items():
            if definition.get(key):
                raise _Invalid(f"services.{name}.{key}", message)


def _warnings(services: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    """Valid compose settings that Swarm ignores, worth telling the user about."""
    found: list[str] = []
    for name in sorted(services):
        definition, path = services[name], f"services.{name}"
        found += [
            f"{path}.{key}: ignored by docker stack deploy"
            for key in sorted(definition)
            if key in _IGNORED_SERVICE_KEYS
        ]
        build = definition.get("build")
        if isinstance(build, dict):
            found += [
                f"{path}.build.{key}: ignored by deploybot's builder"
                for key in sorted(build)
                if key in _IGNORED_BUILD_KEYS
            ]
        resources = (definition.get("deploy") or {}).get("resources") or {}
        found += [
            f"{path}.deploy.resources.{key}: ignored by docker stack deploy"
            for key in ("memory_swap", "memory_swappiness")
            if key in resources
        ]
    return tuple(found)


def _repo_path(value: str, path: str) -> str:
    """A normalised path inside the repository ('.' for its root)."""
    if "://" in value or value.startswith("git@"):
        raise _Invalid(path, f"{value!r}: remote build contexts are not supported")
    if posixpath.isabs(value):
        raise _Invalid(path, f"{value!r} must be relative to the repository root")
    normalised = posixpath.normpath(value or ".")
    if normalised == ".." or normalised.startswith("../"):
        raise _Invalid(path, f"{value!r} points outside the repository")
    return normalised


def _build_spec(service: str, value: object, env: Mapping[str, str]) -> BuildSpec:
    """compose `build:` (string context or mapping) to what deploybot's builder needs."""
    path = f"services.{service}.build"
    config: Mapping[str, Any] = value if isinstance(value, dict) else {"context": value}
    context = _repo_path(str(config.get("context") or "."), f"{path}.context")
    dockerfile_text = str(config.get("dockerfile") or "Dockerfile")
    if posixpath.isabs(dockerfile_text):
        raise _Invalid(f"{path}.dockerfile", f"{dockerfile_text!r} must be relative to the context")
    _repo_path(posixpath.join(context, dockerfile_text), f"{path}.dockerfile")
    args = {
        key: env[key] if text is None else text
        for key, text in _mapping_with_nil(config.get("args")).items()
        if text is not None or key in env
    }
    target = config.get("target")
    return BuildSpec(
        service=service,
        context=context,
        dockerfile=posixpath.normpath(dockerfile_text),
        args=args,
        target=str(target) if target else None,
    )


def _validated_document(text: str, env: Mapping[str, str]) -> dict[str, Any]:
    document = _load_yaml(text)
    if not isinstance(document, dict):
        raise _Invalid(None, "top level must be a mapping with a `services:` key")
    _check_keys(document, "")
    interpolated = _interpolate(document, (), "", env)
    assert isinstance(interpolated, dict)
    _TOP.check(interpolated, "")
    if not interpolated["services"]:
        raise _Invalid("services", "must define at least one service")
    _check_version(interpolated.get("version"))
    return interpolated


def parse_stack_file(
    text: str, filename: str = "docker-compose.stack.yml", env: Mapping[str, str] | None = None
) -> StackFile:
    """Parse, interpolate and validate a stack file; every error names the key to fix.

    The services are also converted once with placeholder values, so that problems docker
    reports only at deploy time (bad durations, undefined networks...) surface here.
    """
    variables: Mapping[str, str] = env or {}
    with _reported_as(filename):
        document = _validated_document(text, variables)
        services: dict[str, dict[str, Any]] = {
            name: dict(definition) for name, definition in document["services"].items()
        }
        networks = {k: dict(v or {}) for k, v in (document.get("networks") or {}).items()}
        volumes = {k: dict(v or {}) for k, v in (document.get("volumes") or {}).items()}
        _reject_unsupported(document, services)
        _check_external("networks", networks)
        _check_external("volumes", volumes)
        for definition in services.values():
            if "environment" in definition:
                definition["environment"] = _resolve_environment(
                    definition["environment"], variables
                )
        builds = {
            name: _build_spec(name, definition["build"], variables)
            for name, definition in sorted(services.items())
            if definition.get("build") is not None
        }
        stack = StackFile(
            filename=filename,
            services=services,
            networks=networks,
            builds=builds,
            volumes=volumes,
            warnings=_warnings(services),
        )
        _convert_all(stack, "stack", {}, None, "vip", "host", placeholder_image="image")
    return stack


def single_service_stack(service: str, filename: str = "Dockerfile") -> StackFile:
    """A repository with a Dockerfile and no stack file: one service built from the root."""
    with _reported_as(filename):
        if not _SERVICE_NAME.fullmatch(service):
            raise _Invalid(
                f"services.{service}", f"invalid service name: must match {_SERVICE_NAME.pattern}"
            )
        dockerfile = _repo_path(filename, "dockerfile")
    definition: dict[str, Any] = {
        "build": {"context": ".", "dockerfile": dockerfile},
        "deploy": {"replicas": 1},
    }
    build = BuildSpec(service=service, context=".", dockerfile=dockerfile, args={}, target=None)
    return StackFile(
        filename=filename, services={service: definition}, networks={}, builds={service: build}
    )


# --------------------------------------------------------------------------- conversion API


def _check_namespace(namespace: str) -> None:
    if not _SERVICE_NAME.fullmatch(namespace):
        raise ValueError(f"invalid stack namespace {namespace!r}")


def _convert_all(
    stack: StackFile,
    namespace: str,
    images: Mapping[str, str],
    labels: Mapping[str, str] | None,
    endpoint_mode: str,
    publish_mode: str,
    placeholder_image: str | None = None,
) -> list[ServiceSpec]:
    networks = _network_defs(stack, namespace)
    volumes = _volume_defs(stack, namespace)
    specs = []
    for service in sorted(stack.services):
        definition = stack.services[service]
        image = images.get(service) or definition.get("image") or placeholder_image
        if not image:
            why = "was not built" if service in stack.builds else "has no `image:`"
            raise _Invalid(f"services.{service}.image", f"no image to run: the service {why}")
        target = _Target(
            namespace, str(image), labels or {}, endpoint_mode, publish_mode, networks, volumes
        )
        spec = _service_spec(definition, service, target)
        specs.append(ServiceSpec(name=spec["Name"], service=service, spec=spec))
    return specs


def service_specs(
    stack: StackFile,
    namespace: str,
    images: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
    default_endpoint_mode: str = "dnsrr",
    default_publish_mode: str = "host",
) -> list[ServiceSpec]:
    """Engine API ServiceSpecs for every service, sorted by service name.

    `images` maps services to the image to run (what deploybot built and pushed); services
    not in it run their compose `image:`. `labels` are added to every service's labels.
    The defaults suit a Swarm without IPVS: DNS round-robin and host-mode publishing.
    """
    _check_namespace(namespace)
    if default_endpoint_mode not in _ENDPOINT_MODES:
        raise ValueError(f"default_endpoint_mode must be one of {_ENDPOINT_MODES}")
    if default_publish_mode not in _PUBLISH_MODES:
        raise ValueError(f"default_publish_mode must be one of {_PUBLISH_MODES}")
    with _reported_as(stack.filename):
        return _convert_all(
            stack, namespace, images, labels, default_endpoint_mode, default_publish_mode
        )


def network_specs(stack: StackFile, namespace: str) -> list[NetworkSpec]:
    """The networks the services use (only those, like docker), sorted by name.

    Includes `<namespace>_default` when a service lists no networks. External networks are
    listed with `external=True` and a spec holding only their Name: check, don't create.
    """
    _check_namespace(namespace)
    with _reported_as(stack.filename):
        defs = _network_defs(stack, namespace)
        specs: dict[str, NetworkSpec] = {}
        for key in _used_networks(stack):
            net = defs.get(key)
            if net is None:
                raise _Invalid("networks", f"undefined network {key!r}")
            body = {"Name": net.name} if net.external else _network_body(net, namespace)
            specs[net.name] = NetworkSpec(name=net.name, external=net.external, spec=body)
    return [specs[name] for name in sorted(specs)]
