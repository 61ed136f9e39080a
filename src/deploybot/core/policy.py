"""The deploy policy: what a deployment may do to the nodes it runs on.

Whoever may deploy could otherwise take root on every node (a stack that bind-mounts
`/var/run/docker.sock` or `/`, adds capabilities, joins the host's namespaces). The policy
is the admin's answer, after Argo CD's AppProject (`sourceRepos`, allow-lists) and
Portainer's security settings (bind mounts, privileged mode, host namespaces, devices,
capabilities, sysctls for non-admins):

- repositories: globs of allowed repository URLs; a local path or `file://` URL is only
  allowed by a pattern that itself starts with `file://` (`*` never matches one);
- registries: globs of registries (or `registry/repository` paths) images may come from;
- bind mounts only from under allowed host path prefixes; capabilities, sysctls by
  allow-list; devices, host namespaces and privileged settings only when allowed;
- published ports within allowed ranges.

This module is pure: the policy, its (de)serialisation, and the checks of a request's
repository URL, of an image reference and of a stack's `Claim`s (what a stack asks of the
nodes, which the runner extracts from the stack file it parsed). Storage is `policy_store`.
"""

from __future__ import annotations

import enum
import fnmatch
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from deploybot.errors import DeploybotError, ErrorCode

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# scp-like ssh syntax ([user@]host:path), as runner/git.py and git itself read it.
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:]+):(?P<path>.*)$")
_CAPABILITY_RE = re.compile(r"^CAP_[A-Z][A-Z0-9_]*$|^ALL$")
_SYSCTL_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]/-]+$")
MAX_PORT = 65535


class ClaimKind(enum.StrEnum):
    """Kinds of things a stack file can ask of the nodes that the policy decides on."""

    BIND_MOUNT = "bind mount"
    CAPABILITY = "capability"
    DEVICE = "device"
    HOST_NAMESPACE = "host namespace"
    PRIVILEGED = "privileged setting"
    SYSCTL = "sysctl"
    PUBLISHED_PORT = "published port"
    IMAGE = "image"


@dataclass(frozen=True)
class Claim:
    """One thing a stack asks of the nodes, at the key of the stack file that asks it."""

    key: str
    """Where in the stack file, e.g. `services.web.volumes[0]`."""
    kind: ClaimKind
    value: str
    """The host path, capability, device, setting, sysctl name, port or image reference."""


@dataclass(frozen=True)
class PortRange:
    start: int
    end: int

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.start <= port <= self.end


class PolicyError(ValueError):
    """A policy setting that does not parse or makes no sense (the message says which)."""


def split_list(text: str) -> tuple[str, ...]:
    """`a, b,,c` → ("a", "b", "c"): how list settings are written in the environment."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_port_ranges(values: Iterable[str]) -> tuple[PortRange, ...]:
    """["80", "1024-65535"] → port ranges; each port 1..65535, start ≤ end."""
    ranges = []
    for value in values:
        start_text, dash, end_text = value.strip().partition("-")
        if not start_text.isdigit() or (dash and not end_text.isdigit()):
            raise PolicyError(f"published ports: {value!r} is not a port or a range `N-M`")
        start = int(start_text)
        end = int(end_text) if dash else start
        ranges.append(port_range(start, end))
    return tuple(ranges)


def port_range(start: int, end: int) -> PortRange:
    if not 1 <= start <= end <= MAX_PORT:
        raise PolicyError(f"published ports: {start}-{end} is not a range within 1-{MAX_PORT}")
    return PortRange(start, end)


def normalise_capability(name: str) -> str:
    """`net_admin` → `CAP_NET_ADMIN` (what Docker does with `cap_add`); `ALL` stays."""
    upper = name.strip().upper()
    return upper if upper in ("ALL", "RESET") or upper.startswith("CAP_") else f"CAP_{upper}"


def _absolute_prefix(prefix: str) -> str:
    if not prefix.startswith("/"):
        raise PolicyError(f"bind mount prefixes: {prefix!r} must be an absolute path")
    return posixpath.normpath(prefix)


@dataclass(frozen=True)
class DeployPolicy:
    """The rules a deployment is held to, by `deploy`, `validateDeployment` and the runner."""

    repositories: tuple[str, ...] = ("*",)
    registries: tuple[str, ...] = ("*",)
    bind_mount_prefixes: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    sysctls: tuple[str, ...] = ()
    published_ports: tuple[PortRange, ...] = (PortRange(1024, MAX_PORT),)
    allow_devices: bool = False
    allow_host_namespaces: bool = False
    allow_privileged: bool = False

    def __post_init__(self) -> None:
        for name in ("repositories", "registries", "capabilities", "sysctls"):
            if any(not v or v != v.strip() for v in getattr(self, name)):
                raise PolicyError(f"{name}: empty or padded entry")
        for cap in self.capabilities:
            if not _CAPABILITY_RE.match(normalise_capability(cap)):
                raise PolicyError(f"capabilities: {cap!r} is not a capability name")
        for sysctl in self.sysctls:
            if not _SYSCTL_RE.match(sysctl):
                raise PolicyError(f"sysctls: {sysctl!r} is not a sysctl name or glob")
        object.__setattr__(
            self,
            "bind_mount_prefixes",
            tuple(_absolute_prefix(p) for p in self.bind_mount_prefixes),
        )
        object.__setattr__(
            self, "capabilities", tuple(normalise_capability(c) for c in self.capabilities)
        )

    # --- (de)serialisation ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "repositories": list(self.repositories),
            "registries": list(self.registries),
            "bindMountPrefixes": list(self.bind_mount_prefixes),
            "capabilities": list(self.capabilities),
            "sysctls": list(self.sysctls),
            "publishedPorts": [str(r) for r in self.published_ports],
            "allowDevices": self.allow_devices,
            "allowHostNamespaces": self.allow_host_namespaces,
            "allowPrivileged": self.allow_privileged,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], base: DeployPolicy | None = None) -> DeployPolicy:
        """A stored policy document; keys it lacks keep `base`'s (the settings') values."""
        policy = base or cls()
        lists = {
            "repositories": "repositories",
            "registries": "registries",
            "bindMountPrefixes": "bind_mount_prefixes",
            "capabilities": "capabilities",
            "sysctls": "sysctls",
        }
        changes: dict[str, Any] = {
            attr: tuple(str(v) for v in data[key]) for key, attr in lists.items() if key in data
        }
        if "publishedPorts" in data:
            changes["published_ports"] = parse_port_ranges(str(v) for v in data["publishedPorts"])
        for key, attr in (
            ("allowDevices", "allow_devices"),
            ("allowHostNamespaces", "allow_host_namespaces"),
            ("allowPrivileged", "allow_privileged"),
        ):
            if key in data:
                changes[attr] = bool(data[key])
        return replace(policy, **changes)

    # --- the rules ------------------------------------------------------------------------

    def repository_refusal(
        self, url: str, *, exists: Callable[[str], bool] = os.path.exists
    ) -> str | None:
        """Why `url` may not be deployed from, or None. `exists` tells a local path named
        like `host:path` from scp-like ssh syntax, as the git layer does."""
        local = local_repository(url, exists=exists)
        if local is not None:
            allowed = any(
                p.startswith("file://") and fnmatch.fnmatchcase(local, p) for p in self.repositories
            )
            if allowed:
                return None
            return (
                f"{local} is a repository on this server's filesystem; local paths and"
                " file:// URLs are refused unless the policy's repositories name them"
                " explicitly (a pattern starting with file://)"
            )
        shown = without_credentials(url)
        if any(
            not p.startswith("file://") and fnmatch.fnmatchcase(shown, p) for p in self.repositories
        ):
            return None
        return f"{shown} matches none of the allowed repositories ({', '.join(self.repositories)})"

    def image_refusal(self, image: str) -> str | None:
        registry, path = registry_of(image)
        for pattern in self.registries:
            if fnmatch.fnmatchcase(registry, pattern) or (
                "/" in pattern and fnmatch.fnmatchcase(f"{registry}/{path}", pattern)
            ):
                return None
        return (
            f"image {image} comes from registry {registry}, which is not among the allowed"
            f" registries ({', '.join(self.registries) or 'none'})"
        )

    def claim_refusal(self, claim: Claim) -> str | None:
        """Why the policy refuses what `claim` asks, or None."""
        check = _CLAIM_CHECKS[claim.kind]
        return check(self, claim.value)

    def _bind(self, source: str) -> str | None:
        path = posixpath.normpath(source)
        for prefix in self.bind_mount_prefixes:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return None
        allowed = ", ".join(self.bind_mount_prefixes) or "none"
        return f"bind mount of host path {source} is not allowed (allowed prefixes: {allowed})"

    def _capability(self, name: str) -> str | None:
        cap = normalise_capability(name)
        if "ALL" in self.capabilities or cap in self.capabilities:
            return None
        allowed = ", ".join(self.capabilities) or "none"
        return f"capability {cap} is not allowed (allowed: {allowed})"

    def _device(self, value: str) -> str | None:
        return None if self.allow_devices else f"device {value} is not allowed"

    def _host_namespace(self, value: str) -> str | None:
        return None if self.allow_host_namespaces else f"{value} is not allowed"

    def _privileged(self, value: str) -> str | None:
        return None if self.allow_privileged else f"{value} is not allowed"

    def _sysctl(self, name: str) -> str | None:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.sysctls):
            return None
        allowed = ", ".join(self.sysctls) or "none"
        return f"sysctl {name} is not allowed (allowed: {allowed})"

    def _port(self, value: str) -> str | None:
        port = int(value)
        if any(port in r for r in self.published_ports):
            return None
        allowed = ", ".join(str(r) for r in self.published_ports) or "none"
        return f"published port {port} is outside the allowed ports ({allowed})"

    def _image(self, image: str) -> str | None:
        return self.image_refusal(image)


_CLAIM_CHECKS: dict[ClaimKind, Callable[[DeployPolicy, str], str | None]] = {
    ClaimKind.BIND_MOUNT: DeployPolicy._bind,
    ClaimKind.CAPABILITY: DeployPolicy._capability,
    ClaimKind.DEVICE: DeployPolicy._device,
    ClaimKind.HOST_NAMESPACE: DeployPolicy._host_namespace,
    ClaimKind.PRIVILEGED: DeployPolicy._privileged,
    ClaimKind.SYSCTL: DeployPolicy._sysctl,
    ClaimKind.PUBLISHED_PORT: DeployPolicy._port,
    ClaimKind.IMAGE: DeployPolicy._image,
}


# --- reading repository URLs and image references ---------------------------------------------


def local_repository(url: str, *, exists: Callable[[str], bool] = os.path.exists) -> str | None:
    """`file://<absolute path>` of a repository on this server's filesystem, or None for a
    remote one. Classified as the git layer classifies it (runner/git.py `_is_local`)."""
    url = url.strip()
    if _SCHEME_RE.match(url):
        parts = urlsplit(url)
        if parts.scheme.lower() != "file":
            return None
        path = unquote(parts.path) or "/"
    elif _SCP_RE.match(url) and not exists(url):
        return None
    else:
        path = url
    return Path(path).expanduser().resolve().as_uri()


def without_credentials(url: str) -> str:
    """A URL as patterns see it (and messages show it): without user and password."""
    if not _SCHEME_RE.match(url):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def registry_of(image: str) -> tuple[str, str]:
    """(registry, repository path) of an image reference, as Docker reads it: the first
    component is a registry when it has a `.` or `:` or is `localhost`, else Docker Hub."""
    name = image.strip().partition("@")[0]
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", name if slash else f"library/{name}"
    last = path.rsplit("/", 1)
    last[-1] = last[-1].split(":", 1)[0]
    return registry, "/".join(last)


# --- the checks as errors ---------------------------------------------------------------------


def violation(message: str, *, field: str | None) -> DeploybotError:
    return DeploybotError(ErrorCode.POLICY_VIOLATION, message, field=field)


def repository_violation(policy: DeployPolicy, url: str) -> DeploybotError | None:
    refusal = policy.repository_refusal(url)
    return None if refusal is None else violation(refusal, field="repositoryUrl")


def image_violation(policy: DeployPolicy, image: str) -> DeploybotError | None:
    refusal = policy.image_refusal(image)
    return None if refusal is None else violation(refusal, field="image")


def stack_violations(
    policy: DeployPolicy, filename: str, claims: Sequence[Claim]
) -> list[DeploybotError]:
    """One error per refused claim, each naming the file and key (`file: key: why`)."""
    errors = []
    for claim in claims:
        refusal = policy.claim_refusal(claim)
        if refusal is not None:
            errors.append(violation(f"{filename}: {claim.key}: {refusal}", field="stackFile"))
    return errors


def spec_claims(service: str, spec: Mapping[str, Any]) -> list[Claim]:
    """What a recorded Engine API ServiceSpec (a rollback's target) asks of the nodes.

    Its image is not claimed: deploybot built and pushed most recorded images itself, and
    the registries were checked when the target was deployed."""
    task = spec.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    path = f"services.{service}"
    claims = [
        Claim(f"{path}.Mounts[{i}]", ClaimKind.BIND_MOUNT, str(m.get("Source") or ""))
        for i, m in enumerate(container.get("Mounts") or [])
        if m.get("Type") == "bind"
    ]
    claims += [
        Claim(f"{path}.CapabilityAdd[{i}]", ClaimKind.CAPABILITY, str(cap))
        for i, cap in enumerate(container.get("CapabilityAdd") or [])
    ]
    claims += [
        Claim(f"{path}.Sysctls.{name}", ClaimKind.SYSCTL, str(name))
        for name in container.get("Sysctls") or {}
    ]
    claims += [
        Claim(f"{path}.Networks[{i}]", ClaimKind.HOST_NAMESPACE, "the host network")
        for i, n in enumerate(task.get("Networks") or [])
        if n.get("Target") == "host"
    ]
    claims += [
        Claim(f"{path}.EndpointSpec.Ports[{i}]", ClaimKind.PUBLISHED_PORT, str(p["PublishedPort"]))
        for i, p in enumerate((spec.get("EndpointSpec") or {}).get("Ports") or [])
        if p.get("PublishedPort")
    ]
    return claims


def restore_violations(
    policy: DeployPolicy, deployment_id: int, specs: Mapping[str, Mapping[str, Any] | None]
) -> list[DeploybotError]:
    """The policy's refusals of putting deployment #N's recorded service specs back."""
    errors = []
    for service in sorted(specs):
        claims = spec_claims(service, specs[service] or {})
        errors += stack_violations(policy, f"deployment #{deployment_id}", claims)
    return errors


@dataclass(frozen=True)
class StoredPolicy:
    """The policy in force and where it comes from (the settings, or an admin's edit)."""

    policy: DeployPolicy
    edited: bool = False
    updated_at: datetime | None = None
    updated_by: str | None = None
    defaults: DeployPolicy = field(default_factory=DeployPolicy)


@dataclass(frozen=True)
class PolicyChange:
    """An admin's edit: each field given replaces the policy's; `reset` goes back to the
    settings' policy (and is applied before the other fields)."""

    repositories: tuple[str, ...] | None = None
    registries: tuple[str, ...] | None = None
    bind_mount_prefixes: tuple[str, ...] | None = None
    capabilities: tuple[str, ...] | None = None
    sysctls: tuple[str, ...] | None = None
    published_ports: tuple[PortRange, ...] | None = None
    allow_devices: bool | None = None
    allow_host_namespaces: bool | None = None
    allow_privileged: bool | None = None
    reset: bool = False

    @property
    def changes(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "reset" and getattr(self, f.name) is not None
        }
