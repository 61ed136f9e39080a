"""Read a stack file: YAML the way docker reads it, interpolation, validation, then what
deploybot needs besides (build specs, resolved environments, warnings).

A repository with only a Dockerfile becomes a one-service stack (`single_service_stack`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import yaml

from deploybot.runner.stack.file_objects import (
    KINDS,
    FileObject,
    Kind,
    load_file_objects,
    repo_file,
    used_keys,
)
from deploybot.runner.stack.interpolation import interpolate
from deploybot.runner.stack.model import (
    SERVICE_NAME,
    BuildSpec,
    Invalid,
    StackFile,
    join_key,
    reported_as,
)
from deploybot.runner.stack.schema import COMPOSE_FILE
from deploybot.runner.stack.services import convert_all
from deploybot.runner.stack.values import go_str, mapping_with_nil

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
    "credential_spec": "credential_spec is not supported yet",
}
_UTF8_BOM: Final = b"\xef\xbb\xbf"

ReadFile = Callable[[str], bytes | None]
"""Reads a file of the deployed commit by repository path (None: the commit has none)."""


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
            raise Invalid(None, f"invalid YAML: {problem}") from None
        lines = text.splitlines()
        source = lines[mark.line].strip() if mark.line < len(lines) else ""
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        quoted = f": {source!r}" if source else ""
        raise Invalid(None, f"invalid YAML at {where}: {problem}{quoted}") from None
    except yaml.YAMLError as exc:
        raise Invalid(None, f"invalid YAML: {exc}") from None


def _check_keys(value: object, path: str) -> None:
    """Mapping keys must be strings (`yes:` or `1:` keys are YAML booleans/ints)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise Invalid(path or None, f"non-string key {key!r} (quote it)")
            _check_keys(item, join_key(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_keys(item, f"{path}[{index}]")


def _resolve_environment(value: object, env: Mapping[str, str]) -> dict[str, str]:
    """docker/cli's resolveEnvironment: `KEY` (or `KEY=`) takes KEY from `env` when set.

    Unlike the CLI, which would pass a bare `KEY` to the engine, an unresolved `KEY` is
    dropped: the server's environment is not the user's shell, so there is nothing to pass.
    """
    resolved: dict[str, str] = {}
    for key, text in mapping_with_nil(value).items():
        if not text and key in env:
            resolved[key] = env[key]
        elif text is not None:
            resolved[key] = text
    return dict(sorted(resolved.items()))


def _check_external(kind: str, definitions: Mapping[str, Mapping[str, Any]]) -> None:
    """docker's LoadNetworks/LoadVolumes conflicts for external objects."""
    for key, config in definitions.items():
        external = config.get("external")
        if not (external is True or isinstance(external, dict)):
            continue
        path = f"{kind}.{key}"
        if isinstance(external, dict) and external.get("name") and config.get("name"):
            raise Invalid(path, "external.name and name conflict; only use name")
        if kind == "volumes":
            for conflicting in ("driver", "driver_opts", "labels"):
                if config.get(conflicting):
                    raise Invalid(f"{path}.{conflicting}", "cannot be used with external: true")


def _check_version(version: object) -> None:
    """`docker stack deploy` only reads compose file format 3.x (or no version at all)."""
    if version is None:
        return
    text = go_str(version)
    if text.split(".")[0] != "3":
        raise Invalid("version", f"unsupported compose file version {text!r}: use 3.x")


def _reject_unsupported(services: Mapping[str, Any]) -> None:
    """Settings deploybot cannot honour yet are errors rather than silently dropped."""
    for name, definition in services.items():
        for key, message in _UNSUPPORTED_SERVICE_KEYS.items():
            if definition.get(key):
                raise Invalid(f"services.{name}.{key}", message)


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
        raise Invalid(path, f"{value!r}: remote build contexts are not supported")
    if posixpath.isabs(value):
        raise Invalid(path, f"{value!r} must be relative to the repository root")
    normalised = posixpath.normpath(value or ".")
    if normalised == ".." or normalised.startswith("../"):
        raise Invalid(path, f"{value!r} points outside the repository")
    return normalised


def _build_spec(service: str, value: object, env: Mapping[str, str]) -> BuildSpec:
    """compose `build:` (string context or mapping) to what deploybot's builder needs."""
    path = f"services.{service}.build"
    config: Mapping[str, Any] = value if isinstance(value, dict) else {"context": value}
    context = _repo_path(str(config.get("context") or "."), f"{path}.context")
    dockerfile_text = str(config.get("dockerfile") or "Dockerfile")
    if posixpath.isabs(dockerfile_text):
        raise Invalid(f"{path}.dockerfile", f"{dockerfile_text!r} must be relative to the context")
    _repo_path(posixpath.join(context, dockerfile_text), f"{path}.dockerfile")
    args = {
        key: env[key] if text is None else text
        for key, text in mapping_with_nil(config.get("args")).items()
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
        raise Invalid(None, "top level must be a mapping with a `services:` key")
    _check_keys(document, "")
    interpolated = interpolate(document, (), "", env)
    assert isinstance(interpolated, dict)
    COMPOSE_FILE.check(interpolated, "")
    if not interpolated["services"]:
        raise Invalid("services", "must define at least one service")
    _check_version(interpolated.get("version"))
    return interpolated


def parse_env_file(data: bytes, path: str) -> dict[str, str | None]:
    """docker/cli's opts.ParseEnvFile: `KEY=value` lines taken as they are (no quotes
    removed, nothing interpolated), `#` comments and blank lines skipped, and a bare `KEY`
    taken from the stack's variables (None here, resolved with `environment`)."""
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(path, "env file is not valid UTF-8") from None
    values: dict[str, str | None] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        variable, sep, value = line.partition("=")
        if any(c.isspace() for c in variable):
            raise Invalid(path, f"line {number}: variable {variable!r} contains whitespace")
        if not variable:
            raise Invalid(path, f"line {number}: no variable name")
        values[variable] = value if sep else None
    return values


def _env_files(
    service: str,
    definition: Mapping[str, Any],
    stack_file: str,
    read_file: ReadFile | None,
    missing: list[tuple[str, str]],
) -> dict[str, str | None]:
    """The service's env files merged in order (a later file wins), read from the commit."""
    raw = definition.get("env_file")
    if not raw:
        return {}
    path = f"services.{service}.env_file"
    if read_file is None:
        raise Invalid(path, "env_file needs the repository's files (deploy from git)")
    merged: dict[str, str | None] = {}
    for index, entry in enumerate([raw] if isinstance(raw, str) else list(raw)):
        file = repo_file(posixpath.dirname(stack_file), str(entry), f"{path}[{index}]")
        data = read_file(file)
        if data is None:
            missing.append((f"{path}[{index}]", f"{file} is not in the deployed commit"))
            continue
        merged.update(parse_env_file(data, f"{path}[{index}] ({file})"))
    return merged


def _object_files(
    services: Mapping[str, Mapping[str, Any]],
    objects: Mapping[Kind, Mapping[str, FileObject]],
    read_file: ReadFile | None,
    missing: list[tuple[str, str]],
) -> dict[str, bytes]:
    """The files of the configs and secrets some service uses, read from the commit."""
    files: dict[str, bytes] = {}
    if read_file is None:
        return files
    for kind in KINDS:
        for key in used_keys(services, kind):
            obj = objects[kind].get(key)
            if obj is None or obj.file is None or obj.file in files:
                continue
            data = read_file(obj.file)
            if data is None:
                missing.append((f"{kind}s.{key}.file", f"{obj.file} is not in the deployed commit"))
            else:
                files[obj.file] = data
    return files


def parse_stack_file(
    text: str,
    filename: str = "docker-compose.stack.yml",
    env: Mapping[str, str] | None = None,
    read_file: ReadFile | None = None,
) -> StackFile:
    """Parse, interpolate and validate a stack file; every error names the key to fix.

    The services are also converted once with placeholder values, so that problems docker
    reports only at deploy time (bad durations, undefined networks...) surface here.
    `read_file` reads the commit's env files and the files of configs and secrets; files
    it lacks are listed in `missing_files` (so that every one can be reported).
    """
    variables: Mapping[str, str] = env or {}
    with reported_as(filename):
        document = _validated_document(text, variables)
        services: dict[str, dict[str, Any]] = {
            name: dict(definition) for name, definition in document["services"].items()
        }
        networks = {k: dict(v or {}) for k, v in (document.get("networks") or {}).items()}
        volumes = {k: dict(v or {}) for k, v in (document.get("volumes") or {}).items()}
        _reject_unsupported(services)
        _check_external("networks", networks)
        _check_external("volumes", volumes)
        objects = {
            kind: load_file_objects(kind, document.get(f"{kind}s"), filename) for kind in KINDS
        }
        missing: list[tuple[str, str]] = []
        for name, definition in sorted(services.items()):
            env_files = _env_files(name, definition, filename, read_file, missing)
            if "environment" in definition or env_files:
                merged = {**env_files, **mapping_with_nil(definition.get("environment"))}
                definition["environment"] = _resolve_environment(merged, variables)
        files = _object_files(services, objects, read_file, missing)
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
            configs=objects["config"],
            secrets=objects["secret"],
            files=files,
            missing_files=tuple(missing),
        )
        convert_all(stack, "stack", {}, None, "vip", "host", placeholder_image="image")
    return stack


def single_service_stack(service: str, filename: str = "Dockerfile") -> StackFile:
    """A repository with a Dockerfile and no stack file: one service built from the root."""
    with reported_as(filename):
        if not SERVICE_NAME.fullmatch(service):
            raise Invalid(
                f"services.{service}", f"invalid service name: must match {SERVICE_NAME.pattern}"
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
