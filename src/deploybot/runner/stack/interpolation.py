"""Variable interpolation as compose does it: `$VAR`, `${VAR:-default}`, `${VAR:?error}`, `$$`,
then the type casts docker applies to interpolated strings at known keys."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from deploybot.runner.stack.model import Invalid, join_key

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
    _service_path("configs", "[]", "mode"): _to_int,
    _service_path("secrets", "[]", "mode"): _to_int,
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


def interpolate(value: object, path: tuple[str, ...], shown: str, env: Mapping[str, str]) -> object:
    """Interpolate every string value (not keys), then type-cast where docker does."""
    if isinstance(value, str):
        try:
            expanded = _substitute(value, env)
        except ValueError as exc:
            raise Invalid(shown or None, str(exc)) from None
        cast = _cast_for(path)
        if expanded == value or cast is None:
            return expanded
        try:
            return cast(expanded)
        except ValueError as exc:
            raise Invalid(shown, f"failed to cast to expected type: {exc}") from None
    if isinstance(value, dict):
        return {k: interpolate(v, (*path, k), join_key(shown, k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [
            interpolate(item, (*path, "[]"), f"{shown}[{index}]", env)
            for index, item in enumerate(value)
        ]
    return value
