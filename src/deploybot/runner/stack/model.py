"""What a stack file becomes, and how its errors are told: the package's vocabulary.

`StackFile` is a parsed stack file; `ServiceSpec` and `NetworkSpec` are the Engine API bodies
it converts to; `StackFileError` names the file and the key to fix. Inside the package,
`Invalid` carries the key path until `reported_as` adds the file name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from deploybot.runner.stack.file_objects import FileObject

NAMESPACE_LABEL: Final = "com.docker.stack.namespace"
IMAGE_LABEL: Final = "com.docker.stack.image"
DEFAULT_NETWORK: Final = "default"
DEFAULT_NETWORK_DRIVER: Final = "overlay"
SERVICE_NAME: Final = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
ENDPOINT_MODES: Final = ("vip", "dnsrr")
PUBLISH_MODES: Final = ("ingress", "host")


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
    settings that Swarm ignores, which `docker stack deploy` prints too. `configs` and
    `secrets` are the top-level ones; `files` holds what their `file:`s contain.
    """

    filename: str
    services: dict[str, dict[str, Any]]
    networks: dict[str, dict[str, Any]]
    builds: dict[str, BuildSpec]
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    configs: dict[str, FileObject] = field(default_factory=dict)
    secrets: dict[str, FileObject] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    """Content of the configs' and secrets' files, by repository path (read from the commit)."""
    missing_files: tuple[tuple[str, str], ...] = ()
    """(key path, message) of each file the stack needs that the commit lacks."""


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


class Invalid(Exception):
    """Raised by helpers that know the key path but not the file; wrapped at the API edge."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(key, message)
        self.key = key
        self.message = message


@contextmanager
def reported_as(filename: str) -> Iterator[None]:
    """Turn internal errors into StackFileError naming `filename`."""
    try:
        yield
    except Invalid as exc:
        raise StackFileError(filename, exc.key, exc.message) from None


def join_key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_namespace(namespace: str) -> None:
    if not SERVICE_NAME.fullmatch(namespace):
        raise ValueError(f"invalid stack namespace {namespace!r}")
