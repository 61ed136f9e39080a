"""The stack's networks: engine names of top-level networks (and volumes), the networks
`docker stack deploy` creates, and each service's attachments to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deploybot.runner.stack.model import (
    DEFAULT_NETWORK,
    DEFAULT_NETWORK_DRIVER,
    NAMESPACE_LABEL,
    Invalid,
    NetworkSpec,
    StackFile,
    check_namespace,
    reported_as,
)
from deploybot.runner.stack.values import compact, go_str, mapping


@dataclass(frozen=True)
class Resolved:
    """A top-level network or volume with its engine name decided."""

    key: str
    name: str
    external: bool
    config: dict[str, Any]


def resolve(key: str, config: Mapping[str, Any], namespace: str) -> Resolved:
    """Engine name of a network/volume: `name:`, external name, or `<namespace>_<key>`."""
    external = config.get("external")
    if external is True or isinstance(external, dict):
        external_name = external.get("name") if isinstance(external, dict) else None
        name = str(external_name or config.get("name") or key)
        return Resolved(key, name, True, dict(config))
    return Resolved(key, str(config.get("name") or f"{namespace}_{key}"), False, dict(config))


def network_defs(stack: StackFile, namespace: str) -> dict[str, Resolved]:
    defs = {key: resolve(key, config, namespace) for key, config in stack.networks.items()}
    defs.setdefault(DEFAULT_NETWORK, resolve(DEFAULT_NETWORK, {}, namespace))
    return defs


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


def _network_body(net: Resolved, namespace: str) -> dict[str, Any]:
    """POST /networks/create body, as docker's convert.Networks + createNetworks send it."""
    config = net.config
    body: dict[str, Any] = {
        "Name": net.name,
        "Driver": str(config.get("driver") or DEFAULT_NETWORK_DRIVER),
        "Attachable": bool(config.get("attachable", False)),
        "Internal": bool(config.get("internal", False)),
        "Labels": {**mapping(config.get("labels")), NAMESPACE_LABEL: namespace},
        "Options": {str(k): go_str(v) for k, v in (config.get("driver_opts") or {}).items()},
    }
    ipam = config.get("ipam") or {}
    if ipam.get("driver") or ipam.get("config"):
        body["IPAM"] = {
            "Driver": str(ipam.get("driver") or ""),
            "Config": [{"Subnet": str(c.get("subnet", ""))} for c in ipam.get("config") or []],
        }
    return body


def _is_user_defined_network(name: str) -> bool:
    """docker adds the service name as alias only on user-defined networks."""
    return name not in ("default", "bridge", "host", "none") and not name.startswith("container:")


def attachments(
    definition: Mapping[str, Any], networks: Mapping[str, Resolved], service: str, path: str
) -> list[dict[str, Any]]:
    attachments: list[dict[str, Any]] = []
    for key, settings in _service_networks(definition).items():
        net = networks.get(key)
        if net is None:
            raise Invalid(f"{path}.networks", f"undefined network {key!r} (add it to `networks:`)")
        aliases = [str(a) for a in settings.get("aliases") or []]
        if _is_user_defined_network(net.name):
            aliases.append(service)
        options = {str(k): go_str(v) for k, v in (settings.get("driver_opts") or {}).items()}
        attachments.append(compact({"Target": net.name, "Aliases": aliases, "DriverOpts": options}))
    return sorted(attachments, key=lambda a: str(a["Target"]))


def network_specs(stack: StackFile, namespace: str) -> list[NetworkSpec]:
    """The networks the services use (only those, like docker), sorted by name.

    Includes `<namespace>_default` when a service lists no networks. External networks are
    listed with `external=True` and a spec holding only their Name: check, don't create.
    """
    check_namespace(namespace)
    with reported_as(stack.filename):
        defs = network_defs(stack, namespace)
        specs: dict[str, NetworkSpec] = {}
        for key in _used_networks(stack):
            net = defs.get(key)
            if net is None:
                raise Invalid("networks", f"undefined network {key!r}")
            body = {"Name": net.name} if net.external else _network_body(net, namespace)
            specs[net.name] = NetworkSpec(name=net.name, external=net.external, spec=body)
    return [specs[name] for name in sorted(specs)]
