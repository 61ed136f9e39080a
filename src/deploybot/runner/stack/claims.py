"""What a parsed stack file asks of the nodes, for the deploy policy (`core.policy`) to judge.

Read from the `StackFile` the loader already validated, with the loader's own readers of the
short volume and port syntax, so the policy sees each setting as Swarm will apply it. Each
claim names the key of the file that makes it (`services.web.volumes[0]`). Settings that
`docker stack deploy` ignores (`privileged`, `devices`, `network_mode`...) are claimed too:
they are refused the same way, so a stack file's meaning never depends on the orchestrator.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from typing import Any

from deploybot.core.policy import Claim, ClaimKind, normalise_capability
from deploybot.runner.stack.model import StackFile
from deploybot.runner.stack.networks import resolve
from deploybot.runner.stack.values import parse_port_spec, parse_volume_spec

#: Service keys that share a namespace with the host when set to `host`.
_NAMESPACE_KEYS = ("network_mode", "pid", "ipc", "uts", "userns_mode", "cgroupns_mode")


def stack_claims(stack: StackFile) -> list[Claim]:
    """Every claim of `stack`, services in name order, then its top-level volumes and networks."""
    claims: list[Claim] = []
    for name in sorted(stack.services):
        claims += _service_claims(name, stack.services[name], built=name in stack.builds)
    claims += _volume_claims(stack.volumes)
    claims += _network_claims(stack.networks)
    return claims


def _service_claims(name: str, definition: Mapping[str, Any], *, built: bool) -> Iterator[Claim]:
    path = f"services.{name}"
    image = definition.get("image")
    if image and not built:
        yield Claim(f"{path}.image", ClaimKind.IMAGE, str(image))
    yield from _mount_claims(path, definition.get("volumes") or [])
    for index, cap in enumerate(_list(definition.get("cap_add"))):
        yield Claim(f"{path}.cap_add[{index}]", ClaimKind.CAPABILITY, normalise_capability(cap))
    for index, device in enumerate(_list(definition.get("devices"))):
        yield Claim(f"{path}.devices[{index}]", ClaimKind.DEVICE, device.split(":", 1)[0])
    for key in _NAMESPACE_KEYS:
        if str(definition.get(key) or "").lower() == "host":
            yield Claim(f"{path}.{key}", ClaimKind.HOST_NAMESPACE, f"{key}: host")
    if definition.get("privileged"):
        yield Claim(f"{path}.privileged", ClaimKind.PRIVILEGED, "privileged: true")
    for index, option in enumerate(_list(definition.get("security_opt"))):
        if "unconfined" in option or "disable" in option:
            yield Claim(
                f"{path}.security_opt[{index}]", ClaimKind.PRIVILEGED, f"security_opt {option}"
            )
    if definition.get("cgroup_parent"):
        yield Claim(f"{path}.cgroup_parent", ClaimKind.HOST_NAMESPACE, "cgroup_parent")
    yield from _sysctl_claims(path, definition.get("sysctls"))
    yield from _port_claims(path, definition.get("ports") or [])


def _list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value] if isinstance(value, list) else []


def _mount_claims(path: str, volumes: list[Any]) -> Iterator[Claim]:
    for index, item in enumerate(volumes):
        volume = item if isinstance(item, dict) else parse_volume_spec(item)
        if volume.get("type") == "bind":
            source = str(volume.get("source") or "")
            yield Claim(f"{path}.volumes[{index}]", ClaimKind.BIND_MOUNT, source)


def _sysctl_claims(path: str, sysctls: object) -> Iterator[Claim]:
    if isinstance(sysctls, dict):
        names = [str(k) for k in sysctls]
        keys = [f"{path}.sysctls.{n}" for n in names]
    else:
        names = [entry.split("=", 1)[0].strip() for entry in _list(sysctls)]
        keys = [f"{path}.sysctls[{i}]" for i in range(len(names))]
    for key, name in zip(keys, names, strict=True):
        yield Claim(key, ClaimKind.SYSCTL, name)


def _port_claims(path: str, ports: list[Any]) -> Iterator[Claim]:
    for index, item in enumerate(ports):
        if isinstance(item, dict):
            published = _published(item.get("published"))
        else:
            published = [pub for _, _, pub in parse_port_spec(item) if pub]
        for port in published:
            yield Claim(f"{path}.ports[{index}]", ClaimKind.PUBLISHED_PORT, str(port))


def _published(value: object) -> list[int]:
    """Long syntax `published`: a port, or a range written as a string (`8000-8010`)."""
    if not value:
        return []
    start, _, end = str(value).partition("-")
    return list(range(int(start), int(end or start) + 1))


def _volume_claims(volumes: Mapping[str, Mapping[str, Any]]) -> Iterator[Claim]:
    """A local volume with a `device` is a host path (`o: bind`) or a host device in disguise."""
    for key in sorted(volumes):
        config = volumes[key]
        options = config.get("driver_opts") or {}
        device = str(options.get("device") or "")
        if config.get("external") or not device:
            continue
        where = f"volumes.{key}.driver_opts.device"
        mount_options = str(options.get("o") or "").split(",")
        if "bind" in mount_options or str(options.get("type") or "none") == "none":
            yield Claim(where, ClaimKind.BIND_MOUNT, posixpath.normpath(device))
        elif device.startswith("/"):
            yield Claim(where, ClaimKind.DEVICE, device)


def _network_claims(networks: Mapping[str, Mapping[str, Any]]) -> Iterator[Claim]:
    """The engine's `host` network (external) shares the host's network namespace."""
    for key in sorted(networks):
        config = networks[key]
        network = resolve(key, config, "stack")
        if network.external and network.name == "host":
            yield Claim(f"networks.{key}", ClaimKind.HOST_NAMESPACE, "the host network")
        elif str(config.get("driver") or "") == "host":
            yield Claim(f"networks.{key}.driver", ClaimKind.HOST_NAMESPACE, "driver: host")
