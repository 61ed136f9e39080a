"""A compose service's whole ServiceSpec (convert.Service): labels, task template, mode,
update and rollback configs, restart policy, resources, placement, endpoint and ports.

The defaults suit a Swarm without IPVS (DNS round-robin, host-mode ports); the caller
passes docker's own (vip, ingress) where the platform has a routing mesh.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploybot.runner.stack.container import container_spec, volume_defs
from deploybot.runner.stack.file_objects import KINDS, FileObject, references
from deploybot.runner.stack.images import normalize_image
from deploybot.runner.stack.model import (
    ENDPOINT_MODES,
    IMAGE_LABEL,
    NAMESPACE_LABEL,
    PUBLISH_MODES,
    Invalid,
    ServiceSpec,
    StackFile,
    check_namespace,
    reported_as,
)
from deploybot.runner.stack.networks import Resolved, attachments, network_defs
from deploybot.runner.stack.values import (
    compact,
    mapping,
    parse_bytes,
    parse_cpus,
    parse_duration,
    parse_port_spec,
)


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
            ports.extend(_port(p, t, pub, publish_default) for p, t, pub in parse_port_spec(item))
    if endpoint_mode == "dnsrr":
        for port in ports:
            if port["PublishMode"] == "ingress":
                raise Invalid(
                    f"{path}.ports",
                    f"port {port['TargetPort']} is published in ingress mode, which needs "
                    "endpoint_mode vip; use `mode: host` (long syntax) or endpoint_mode: vip",
                )
    return sorted(
        ports,
        key=lambda p: (p.get("PublishedPort", 0), p["TargetPort"], p["Protocol"], p["PublishMode"]),
    )


def _port(protocol: str, target: int, published: int, mode: str) -> dict[str, Any]:
    return compact(
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
    return compact({"Mode": mode, "Ports": ports})


def _mode(deploy: Mapping[str, Any], path: str) -> dict[str, Any]:
    """convertDeployMode; unlike docker (which leaves it to the engine) replicas default to 1."""
    mode = str(deploy.get("mode") or "replicated")
    replicas = deploy.get("replicas")
    if mode in ("global", "global-job") and replicas is not None:
        raise Invalid(
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
    delay = parse_duration(config["delay"]) if "delay" in config else 0
    monitor = parse_duration(config["monitor"]) if "monitor" in config else 0
    update: dict[str, Any] = {"Parallelism": int(config.get("parallelism", 1))}
    update.update(
        compact({"Delay": delay, "FailureAction": config.get("failure_action"), "Monitor": monitor})
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
        result = compact({"Condition": policy.get("condition")})
        for key, name in (("delay", "Delay"), ("window", "Window")):
            if key in policy:
                result[name] = parse_duration(policy[key])
        if "max_attempts" in policy:
            result["MaxAttempts"] = int(policy["max_attempts"])
        return result
    restart = definition.get("restart")
    return _legacy_restart(str(restart), f"{path}.restart") if restart else None


def _legacy_restart(restart: str, path: str) -> dict[str, Any] | None:
    """opts.ParseRestartPolicy mapped to swarm conditions, as docker/cli does."""
    name, colon, count_text = restart.partition(":")
    if colon and not name:
        raise Invalid(path, "invalid restart policy: no policy before the colon")
    if count_text and not re.fullmatch(r"[+-]?\d+", count_text):
        raise Invalid(path, "invalid restart policy: maximum retry count must be an integer")
    count = int(count_text) if count_text else 0
    if count < 0:
        raise Invalid(path, "invalid restart policy: maximum retry count cannot be negative")
    if name in ("no", ""):
        return None
    conditions = {"always": "any", "unless-stopped": "any", "on-failure": "on-failure"}
    if name not in conditions:
        raise Invalid(
            path, f"unknown restart policy {name!r} (use no, always, on-failure or unless-stopped)"
        )
    return compact({"Condition": conditions[name], "MaxAttempts": count})


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
    return compact(
        {
            "NanoCPUs": parse_cpus(config["cpus"]) if "cpus" in config else 0,
            "MemoryBytes": parse_bytes(config["memory"]) if "memory" in config else 0,
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
    return compact(
        {
            "Constraints": [str(c) for c in placement.get("constraints") or []],
            "Preferences": preferences,
            "MaxReplicas": int(placement.get("max_replicas_per_node", 0)),
        }
    )


@dataclass(frozen=True)
class _Target:
    """Everything a service conversion needs besides the compose definition."""

    namespace: str
    image: str
    """As the docker CLI stores it (`images.normalize_image`)."""
    labels: Mapping[str, str]
    endpoint_mode: str
    publish_mode: str
    networks: Mapping[str, Resolved]
    volumes: Mapping[str, Resolved]
    objects: Mapping[str, Mapping[str, FileObject]]
    """Top-level configs and secrets by kind."""
    object_names: Mapping[tuple[str, str], str]
    """(kind, key) → the name the object was created under (default: docker's)."""
    written_image: str
    """As the stack file (or the build) gave it: the stack's image label keeps it."""


def _task_template(
    definition: Mapping[str, Any],
    deploy: Mapping[str, Any],
    service: str,
    target: _Target,
    path: str,
) -> dict[str, Any]:
    container = container_spec(
        definition,
        image=target.image,
        namespace=target.namespace,
        volumes=target.volumes,
        path=path,
    )
    for kind in KINDS:
        refs = references(
            definition, kind, target.objects[kind], target.namespace, target.object_names, path
        )
        if refs:
            container[f"{kind.title()}s"] = refs
    template: dict[str, Any] = {"ContainerSpec": container, "Resources": _resources(deploy)}
    restart = _restart_policy(definition, deploy, path)
    if restart is not None:
        template["RestartPolicy"] = restart
    template["Placement"] = _placement(deploy)
    template["Networks"] = attachments(definition, target.networks, service, path)
    logging = definition.get("logging")
    if logging is not None:
        template["LogDriver"] = compact(
            {"Name": logging.get("driver"), "Options": mapping(logging.get("options"))}
        )
    return template


def _service_spec(definition: Mapping[str, Any], service: str, target: _Target) -> dict[str, Any]:
    """convert.Service: one compose service to an Engine API ServiceSpec."""
    path = f"services.{service}"
    deploy = definition.get("deploy") or {}
    labels = {
        **mapping(deploy.get("labels")),
        **target.labels,
        NAMESPACE_LABEL: target.namespace,
        IMAGE_LABEL: target.written_image,
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


def convert_all(
    stack: StackFile,
    namespace: str,
    images: Mapping[str, str],
    labels: Mapping[str, str] | None,
    endpoint_mode: str,
    publish_mode: str,
    placeholder_image: str | None = None,
    object_names: Mapping[tuple[str, str], str] | None = None,
) -> list[ServiceSpec]:
    networks = network_defs(stack, namespace)
    objects = {"config": stack.configs, "secret": stack.secrets}
    volumes = volume_defs(stack, namespace)
    specs = []
    for service in sorted(stack.services):
        definition = stack.services[service]
        image = images.get(service) or definition.get("image") or placeholder_image
        if not image:
            why = "was not built" if service in stack.builds else "has no `image:`"
            raise Invalid(f"services.{service}.image", f"no image to run: the service {why}")
        target = _Target(
            namespace,
            normalize_image(str(image)),
            labels or {},
            endpoint_mode,
            publish_mode,
            networks,
            volumes,
            objects,
            object_names or {},
            written_image=str(image),
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
    object_names: Mapping[tuple[str, str], str] | None = None,
) -> list[ServiceSpec]:
    """Engine API ServiceSpecs for every service, sorted by service name.

    `images` maps services to the image to run (what deploybot built and pushed); services
    not in it run their compose `image:`. `labels` are added to every service's labels.
    The defaults suit a Swarm without IPVS: DNS round-robin and host-mode publishing.
    `object_names` maps (kind, key) of configs and secrets to the names they were created
    under (their IDs are filled in by the runner once they exist).
    """
    check_namespace(namespace)
    if default_endpoint_mode not in ENDPOINT_MODES:
        raise ValueError(f"default_endpoint_mode must be one of {ENDPOINT_MODES}")
    if default_publish_mode not in PUBLISH_MODES:
        raise ValueError(f"default_publish_mode must be one of {PUBLISH_MODES}")
    with reported_as(stack.filename):
        return convert_all(
            stack,
            namespace,
            images,
            labels,
            default_endpoint_mode,
            default_publish_mode,
            object_names=object_names,
        )
