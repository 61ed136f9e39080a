"""Would a valid stack file still fail on this Swarm? Checks before anything is deployed.

The stack is converted with this instance's defaults (as the rollout will convert it), then
its published ports are held against the platform (no routing mesh: ingress-mode ports and
VIPs do not work) and against the ports other stacks' services already publish.
"""

from __future__ import annotations

from typing import Any

from deploybot.config import Settings
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.runner.stack.file_objects import KINDS, used_keys
from deploybot.runner.stack.model import StackFile, StackFileError
from deploybot.runner.stack.services import service_specs
from deploybot.runner.swarm import NAMESPACE_LABEL, DockerUnavailable, Swarm


def _spec_error(message: str) -> DeploybotError:
    return DeploybotError(ErrorCode.INVALID_DEPLOYMENT_SPEC, message, field="stackFile")


def _published(spec: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(published port, protocol, mode) of a service spec's ports that publish one."""
    ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
    return [
        (int(p["PublishedPort"]), str(p.get("Protocol", "tcp")), str(p.get("PublishMode", "")))
        for p in ports
        if p.get("PublishedPort")
    ]


async def check_stack_on_swarm(
    settings: Settings, swarm: Swarm, stack: StackFile, namespace: str
) -> tuple[list[DeploybotError], list[str]]:
    """(errors, warnings) of deploying `stack` as `namespace` on this instance's Swarm."""
    errors: list[DeploybotError] = []
    warnings: list[str] = []
    mesh = settings.publish_mode == "ingress"
    images = {service: f"{namespace}/{service}:check" for service in stack.builds}
    try:
        specs = service_specs(
            stack,
            namespace,
            images,
            default_endpoint_mode=settings.endpoint_mode,
            default_publish_mode=settings.publish_mode,
        )
    except StackFileError as exc:
        return [_spec_error(str(exc))], warnings
    ours: dict[tuple[int, str], str] = {}
    for spec in specs:
        path = f"{stack.filename}: services.{spec.service}"
        endpoint = (spec.spec.get("EndpointSpec") or {}).get("Mode", "vip")
        if endpoint == "vip" and not mesh:
            warnings.append(
                f"{path}.deploy.endpoint_mode: vip needs IPVS, which this Swarm lacks;"
                " other services will not reach it by its name (use dnsrr)"
            )
        for port, protocol, mode in _published(spec.spec):
            if mode == "ingress" and not mesh:
                errors.append(
                    _spec_error(
                        f"{path}.ports: port {port}/{protocol} is published in ingress mode,"
                        " but this Swarm has no routing mesh; publish it with `mode: host`"
                    )
                )
            other = ours.get((port, protocol))
            if other is not None:
                message = f"{path}.ports: port {port}/{protocol} is also published by {other}"
                errors.append(_spec_error(message))
            ours[(port, protocol)] = spec.service
    try:
        for service in await swarm.query("services"):
            labels = service["Spec"].get("Labels") or {}
            if labels.get(NAMESPACE_LABEL) == namespace:
                continue  # our own services give their ports to their new tasks
            taken = _published(service["Spec"]) + [
                (int(p["PublishedPort"]), str(p.get("Protocol", "tcp")), "")
                for p in (service.get("Endpoint") or {}).get("Ports") or []
                if p.get("PublishedPort")
            ]
            for port, protocol, _ in taken:
                if (port, protocol) in ours:
                    errors.append(
                        _spec_error(
                            f"{stack.filename}: services.{ours.pop((port, protocol))}.ports:"
                            f" port {port}/{protocol} is already published by service"
                            f" {service['Spec']['Name']}"
                        )
                    )
    except DockerUnavailable as exc:
        warnings.append(f"published ports not checked against the Swarm: {exc}")
    try:
        errors += await missing_external_objects(swarm, stack, namespace)
    except DockerUnavailable as exc:
        warnings.append(f"external configs and secrets not checked: {exc}")
    return errors, warnings


async def missing_external_objects(
    swarm: Swarm, stack: StackFile, namespace: str
) -> list[DeploybotError]:
    """One error per external config or secret a service uses that the Swarm lacks
    (secrets deploybot keeps are checked against its database instead)."""
    errors: list[DeploybotError] = []
    for kind in KINDS:
        objects = stack.configs if kind == "config" else stack.secrets
        for key in used_keys(stack.services, kind):
            obj = objects.get(key)
            if obj is None or not obj.external or obj.kept_secret is not None:
                continue
            name = obj.engine_name(namespace)
            if await swarm.find_object(kind, name) is None:
                errors.append(
                    _spec_error(
                        f"{stack.filename}: {kind}s.{key}: external {kind} {name} does not"
                        " exist on the Swarm (create it, or drop `external: true`)"
                    )
                )
    return errors
