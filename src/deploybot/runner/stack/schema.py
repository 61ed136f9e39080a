"""The compose v3 schema, and the small JSON-schema subset that checks it.

`COMPOSE_FILE.check(document, "")` raises `Invalid` naming the key path of the first
problem (an unknown key gets a did-you-mean hint). Scalars with a format (durations, sizes,
ports...) are validated by parsing them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from deploybot.runner.stack.model import (
    ENDPOINT_MODES,
    PUBLISH_MODES,
    SERVICE_NAME,
    Invalid,
    join_key,
)
from deploybot.runner.stack.values import (
    PROPAGATIONS,
    is_int,
    is_number,
    parse_bytes,
    parse_count,
    parse_cpus,
    parse_duration,
    parse_port_spec,
    parse_volume_spec,
    shell_split,
)

_OBJECT_NAME: Final = re.compile(r"[a-zA-Z0-9._-]+")


class _Schema:
    """A small JSON-schema subset: enough to validate compose v3 with key paths in errors."""

    label = "a value"

    def accepts(self, value: object) -> bool:
        """Whether the value has the right JSON type (used to pick a oneOf branch)."""
        return True

    def check(self, value: object, path: str) -> None:
        if not self.accepts(value):
            raise Invalid(path or None, f"must be {self.label}")


class _Type(_Schema):
    def __init__(self, label: str, predicate: Callable[[object], bool]) -> None:
        self.label = label
        self._predicate = predicate

    def accepts(self, value: object) -> bool:
        return self._predicate(value)


class _Int(_Schema):
    label = "an integer"

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self._min = minimum
        self._max = maximum

    def accepts(self, value: object) -> bool:
        return is_int(value)

    def check(self, value: object, path: str) -> None:
        super().check(value, path)
        assert isinstance(value, int)
        if self._min is not None and value < self._min:
            raise Invalid(path, f"must be at least {self._min}")
        if self._max is not None and value > self._max:
            raise Invalid(path, f"must be at most {self._max}")


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
            raise Invalid(path, f"must be one of {allowed} (got {value!r})")


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
            raise Invalid(path, str(exc)) from None


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
                raise Invalid(f"{path}[{index}]", f"duplicate entry {item!r}")


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
                raise Invalid(join_key(path, key), "is required")
        for key, item in value.items():
            child = join_key(path, key)
            if key in self.props:
                self.props[key].check(item, child)
            elif self._allow_x and key.startswith("x-"):
                continue
            elif self._extra is not None:
                self._extra.check(item, child)
            else:
                raise Invalid(child, self._unknown(key))

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
            child = join_key(path, key)
            if self._key_pattern is not None and not self._key_pattern.fullmatch(key):
                raise Invalid(child, f"invalid name: must match {self._key_pattern.pattern}")
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
        raise Invalid(path or None, f"must be {self.label}")


_ANY: Final = _Schema()
_STR: Final = _Type("a string", lambda v: isinstance(v, str))
_BOOL: Final = _Type("a boolean", lambda v: isinstance(v, bool))
_NUM: Final = _Type("a number", is_number)
_NULL: Final = _Type("null", lambda v: v is None)
_UINT: Final = _Int(0)
_STRINGS: Final = _Arr(_STR, unique=True)
_STRING_OR_LIST: Final = _OneOf(_STR, _STRINGS)
_SCALAR: Final = _OneOf(_STR, _NUM, _NULL)
_LIST_OR_DICT: Final = _OneOf(_MapOf(_SCALAR), _STRINGS)
_OPTIONS: Final = _MapOf(_OneOf(_STR, _NUM))
_DURATION: Final = _Parsed(parse_duration, "a duration string like '10s'")
_BYTES: Final = _Parsed(parse_bytes, "a size like '512M'", (str, int))
_CPUS: Final = _Parsed(parse_cpus, "a CPU count like '0.5'", (str, int, float))
_COMMAND: Final = _OneOf(_Parsed(shell_split, "a string"), _Arr(_STR))


_HEALTHCHECK: Final = _Obj(
    {
        "disable": _BOOL,
        "interval": _DURATION,
        "retries": _Parsed(parse_count, "a number", (int, float)),
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
            "endpoint_mode": _Enum(*ENDPOINT_MODES),
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
    _Parsed(parse_port_spec, "a port like '8080:80'", (str, int)),
    _Obj(
        {
            "mode": _Enum(*PUBLISH_MODES),
            "target": _Int(1, 65535),
            "published": _Int(0, 65535),
            "protocol": _Enum("tcp", "udp", "sctp"),
        },
        required=("target",),
    ),
)
_MOUNT: Final = _OneOf(
    _Parsed(parse_volume_spec, "a volume like 'data:/var/lib/data'"),
    _Obj(
        {
            "type": _Enum("volume", "bind", "tmpfs"),
            "source": _STR,
            "target": _STR,
            "read_only": _BOOL,
            "consistency": _STR,
            "bind": _Obj({"propagation": _Enum(*PROPAGATIONS)}, extra=_ANY),
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
# A service's `secrets:`/`configs:` entry: a name, or the long syntax (config_schema_v3.x).
_FILE_REFERENCES: Final = _Arr(
    _OneOf(
        _STR,
        _Obj(
            {"source": _STR, "target": _STR, "uid": _STR, "gid": _STR, "mode": _NUM},
            allow_x=True,
        ),
    )
)


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
_FILE_OBJECT_KEYS: Final = {
    "name": _STR,
    "file": _STR,
    "external": _EXTERNAL,
    "labels": _LIST_OR_DICT,
    "template_driver": _STR,
}
# Top-level `secrets:` and `configs:` (secrets may also name a secret driver plugin).
_SECRET: Final = _Obj({**_FILE_OBJECT_KEYS, "driver": _STR, "driver_opts": _OPTIONS}, allow_x=True)
_CONFIG: Final = _Obj(_FILE_OBJECT_KEYS, allow_x=True)
COMPOSE_FILE: Final = _Obj(
    {
        "version": _OneOf(_STR, _NUM),
        "services": _MapOf(_SERVICE, key_pattern=SERVICE_NAME),
        "networks": _OneOf(_NULL, _MapOf(_NETWORK, key_pattern=_OBJECT_NAME)),
        "volumes": _OneOf(_NULL, _MapOf(_VOLUME, key_pattern=_OBJECT_NAME)),
        "secrets": _OneOf(_NULL, _MapOf(_SECRET, key_pattern=_OBJECT_NAME)),
        "configs": _OneOf(_NULL, _MapOf(_CONFIG, key_pattern=_OBJECT_NAME)),
    },
    required=("services",),
    allow_x=True,
)
