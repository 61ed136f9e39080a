"""Swarm configs and secrets of a stack: the top-level `configs:`/`secrets:`, the services'
references to them, and the bodies that create them, as docker/cli's convert package does.

One deliberate difference: Swarm configs and secrets are immutable, so `docker stack deploy`
fails once a file's content changes. deploybot names each object it creates by its content
(`<namespace>_<key>-<12 hex digits of its SHA-256>`), so a changed file becomes a new object
the services roll over to, a rollback finds the old one, and unused ones can be removed.

An external secret whose name starts with `deploybot.` is a secret deploybot keeps for the
application (set through `setSecret`); the runner creates it from the stored value.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from deploybot.runner.stack.model import NAMESPACE_LABEL, Invalid
from deploybot.runner.stack.values import go_str, mapping

Kind = Literal["config", "secret"]
KINDS: Final[tuple[Kind, ...]] = ("config", "secret")

KEPT_SECRET_PREFIX: Final = "deploybot."
"""`external: true` secrets named `deploybot.<name>` are kept by deploybot (see README)."""
MANAGED_LABEL: Final = "com.deploybot.managed"
"""On every config/secret deploybot created: only those are ever removed."""
KEY_LABEL: Final = "com.deploybot.key"
"""The compose key (or kept secret name) the object was made for."""
DIGEST_LABEL: Final = "com.deploybot.digest"
"""SHA-256 of the content of a config or file secret (a kept secret's: of its ciphertext)."""
DEFAULT_MODE: Final = 0o444
MAX_NAME: Final = 64
ENGINE_NAME: Final = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9_.-]*[a-zA-Z0-9])?")


@dataclass(frozen=True)
class FileObject:
    """A top-level config or secret of the stack file."""

    kind: Kind
    key: str
    external: bool
    name: str | None = None
    """`name:` (or the external name); None means `<namespace>_<key>`."""
    file: str | None = None
    """Path in the repository (already joined to the stack file's directory)."""
    labels: dict[str, str] = field(default_factory=dict)

    def engine_name(self, namespace: str) -> str:
        """The name docker gives it: its `name:`, else `<namespace>_<key>`."""
        return self.name or f"{namespace}_{self.key}"

    @property
    def kept_secret(self) -> str | None:
        """The name of the deploybot-kept secret it stands for, if it is one."""
        name = self.name or ""
        if self.kind == "secret" and self.external and name.startswith(KEPT_SECRET_PREFIX):
            return name.removeprefix(KEPT_SECRET_PREFIX)
        return None


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def versioned_name(base: str, digest: str, path: str) -> str:
    """`<base>-<12 hex digits>`: a new name whenever the content changes."""
    name = f"{base}-{digest[:12]}"
    if len(name) > MAX_NAME or not ENGINE_NAME.fullmatch(name):
        raise Invalid(
            path,
            f"{name!r} is not a valid Swarm name (at most {MAX_NAME} characters of "
            "[a-zA-Z0-9_.-]): shorten the key or its `name:`",
        )
    return name


def repo_file(stack_dir: str, value: str, path: str) -> str:
    """A path relative to the stack file's directory as a path in the repository."""
    if posixpath.isabs(value):
        raise Invalid(
            path,
            f"{value!r} must be relative to the stack file: deploybot reads it from the "
            "deployed commit, never from the server's disk",
        )
    joined = posixpath.normpath(posixpath.join(stack_dir, value))
    if joined == ".." or joined.startswith("../"):
        raise Invalid(path, f"{value!r} points outside the repository")
    return joined


def _file_object(
    kind: Kind, key: str, config: Mapping[str, Any], stack_dir: str, path: str
) -> FileObject:
    """docker/cli's loadFileObjectConfig, with files read from the repository."""
    labels = mapping(config.get("labels"))
    for unsupported in ("driver", "template_driver"):
        if config.get(unsupported):
            raise Invalid(f"{path}.{unsupported}", f"{unsupported} is not supported by deploybot")
    external = config.get("external")
    if external is True or isinstance(external, dict):
        external_name = external.get("name") if isinstance(external, dict) else None
        if external_name and config.get("name"):
            raise Invalid(path, "external.name and name conflict; only use name")
        if config.get("file"):
            raise Invalid(f"{path}.file", "cannot be used with external: true")
        name = go_str(external_name or config.get("name") or key)
        return FileObject(kind, key, external=True, name=name, labels=labels)
    file = config.get("file")
    if not file:
        raise Invalid(path, "needs `file:` (a path in the repository) or `external: true`")
    explicit = config.get("name")
    return FileObject(
        kind,
        key,
        external=False,
        name=go_str(explicit) if explicit else None,
        file=repo_file(stack_dir, str(file), f"{path}.file"),
        labels=labels,
    )


def load_file_objects(
    kind: Kind, definitions: Mapping[str, Any] | None, stack_file: str
) -> dict[str, FileObject]:
    stack_dir = posixpath.dirname(stack_file)
    return {
        key: _file_object(kind, key, config or {}, stack_dir, f"{kind}s.{key}")
        for key, config in (definitions or {}).items()
    }


def used_keys(services: Mapping[str, Mapping[str, Any]], kind: Kind) -> list[str]:
    """The top-level keys some service refers to, sorted."""
    used: set[str] = set()
    for definition in services.values():
        for item in definition.get(f"{kind}s") or []:
            used.add(str(item if isinstance(item, str) else item.get("source", "")))
    return sorted(used)


def references(
    definition: Mapping[str, Any],
    kind: Kind,
    objects: Mapping[str, FileObject],
    namespace: str,
    names: Mapping[tuple[str, str], str],
    path: str,
) -> list[dict[str, Any]]:
    """convertServiceSecrets/convertServiceConfigObjs: the ContainerSpec's references.

    `names` maps (kind, key) to the name deploybot created the object under; the IDs are
    added at deploy time, when the objects exist. Sorted by name, as docker sorts them.
    """
    plural, title = f"{kind}s", kind.title()
    refs: list[dict[str, Any]] = []
    targets: set[str] = set()
    for index, item in enumerate(definition.get(plural) or []):
        entry: Mapping[str, Any] = {"source": item} if isinstance(item, str) else item
        source = str(entry.get("source") or "")
        obj = objects.get(source)
        if obj is None:
            raise Invalid(
                f"{path}.{plural}[{index}]",
                f"undefined {kind} {source!r} (add it to the top-level `{plural}:`)",
            )
        name = names.get((kind, source)) or obj.engine_name(namespace)
        target = str(entry.get("target") or source)
        if target in targets:
            raise Invalid(
                f"{path}.{plural}[{index}]", f"duplicate {kind} target for {name} not allowed"
            )
        targets.add(target)
        mode = entry.get("mode")
        file = {
            "Name": target,
            "UID": str(entry.get("uid") or "0"),
            "GID": str(entry.get("gid") or "0"),
            "Mode": DEFAULT_MODE if mode is None else int(mode),
        }
        refs.append({"File": file, f"{title}Name": name})
    return sorted(refs, key=lambda r: str(r[f"{title}Name"]))


def object_body(
    obj: FileObject,
    namespace: str,
    name: str,
    data: bytes,
    digest: str,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """POST /configs/create or /secrets/create: docker's fields plus deploybot's labels."""
    return {
        "Name": name,
        "Labels": {
            **obj.labels,
            **(labels or {}),
            NAMESPACE_LABEL: namespace,
            MANAGED_LABEL: "true",
            KEY_LABEL: obj.kept_secret or obj.key,
            DIGEST_LABEL: digest,
        },
        "Data": base64.b64encode(data).decode("ascii"),
    }


def referenced_names(spec: Mapping[str, Any]) -> set[tuple[Kind, str]]:
    """(kind, name) of every config and secret a ServiceSpec mounts."""
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    found: set[tuple[Kind, str]] = set()
    for kind in KINDS:
        title = kind.title()
        for ref in container.get(f"{title}s") or []:
            found.add((kind, str(ref.get(f"{title}Name", ""))))
    return found
