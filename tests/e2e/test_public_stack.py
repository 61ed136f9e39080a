"""A public real-world stack built around Swarm configs (stefanprodan/swarmprom, see
tests/data/swarmprom/SOURCE.md), deployed once by `docker stack deploy` and once from
deploybot's translation: the Swarm must store the same spec for every service.

The two deploys run one after the other (the stack publishes fixed ingress ports), with
docker's own defaults (VIP endpoints, ingress ports) and without resolving images, so
nothing is pulled. What differs by design is normalised away: deploybot names configs by
their content (`<namespace>_<key>-<digest>`) and IDs and network IDs differ between deploys.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from deploybot.runner.objects import with_object_ids
from deploybot.runner.stack import network_specs, parse_stack_file, service_specs
from deploybot.runner.stack.file_objects import (
    KINDS,
    content_digest,
    object_body,
    used_keys,
    versioned_name,
)
from deploybot.runner.swarm import Swarm
from tests.conftest import DOCKER, docker

DATA = Path(__file__).parent.parent / "data" / "swarmprom"
NS = "se-prom"
DIGEST_SUFFIX = re.compile(r"-[0-9a-f]{12}$")


def _stack_objects(kind: str) -> list[str]:
    out = docker(kind, "ls", "-q", "--filter", f"label=com.docker.stack.namespace={NS}")
    return out.split()


def _remove_leftovers() -> bool:
    """Remove the stack's configs and networks; True when none is left."""
    configs = _stack_objects("config")
    nets = docker("network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={NS}")
    for config in configs:
        subprocess.run([DOCKER, "config", "rm", config], capture_output=True, timeout=30)
    for net in nets.split():
        subprocess.run([DOCKER, "network", "rm", net], capture_output=True, timeout=30)
    return not configs and not nets.split()


async def _remove_all(swarm: Swarm) -> None:
    for service in await swarm.stack_services(NS):
        await swarm.remove_service(service["ID"])
    for _ in range(60):  # tasks release configs and networks asynchronously
        if await asyncio.to_thread(_remove_leftovers):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"stack {NS} did not go away")


def _docker_stack_deploy() -> dict[str, dict[str, Any]]:
    """`docker stack deploy` of the file as published; returns the configs it made."""
    subprocess.run(
        [DOCKER, "stack", "deploy", "--resolve-image", "never", "-c", "docker-compose.yml", NS],
        cwd=DATA,
        env={"PATH": "/usr/bin:/bin"},  # no ADMIN_USER & co: the file's defaults apply
        check=True,
        capture_output=True,
        timeout=120,
    )
    configs = json.loads(docker("config", "inspect", *_stack_objects("config")))
    return {c["Spec"]["Name"]: c["Spec"] for c in configs}


async def _stored(swarm: Swarm) -> dict[str, dict[str, Any]]:
    """Each service's spec as the Swarm stores it, with network IDs turned into names."""
    networks = {n["Id"]: n["Name"] for n in await swarm.query("networks")}
    stored = {}
    for service in await swarm.stack_services(NS):
        spec = copy.deepcopy(service["Spec"])
        for attachment in spec["TaskTemplate"].get("Networks") or []:
            attachment["Target"] = networks.get(attachment["Target"], attachment["Target"])
        for ref in spec["TaskTemplate"]["ContainerSpec"].get("Configs") or []:
            ref.pop("ConfigID")
            ref["ConfigName"] = DIGEST_SUFFIX.sub("", ref["ConfigName"])
        stored[spec["Name"]] = spec
    return stored


async def _deploy_translation(swarm: Swarm) -> dict[str, dict[str, Any]]:
    """What deploybot's rollout sends, without the runner around it; returns the
    config bodies it created by name."""

    def read(path: str) -> bytes | None:
        file = DATA / path
        return file.read_bytes() if file.is_file() else None

    text = (DATA / "docker-compose.yml").read_text()
    stack = parse_stack_file(text, "docker-compose.yml", {}, read)
    assert stack.missing_files == ()
    names: dict[tuple[str, str], str] = {}
    ids: dict[tuple[str, str], str] = {}
    bodies: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        objects = stack.configs if kind == "config" else stack.secrets
        for key in used_keys(stack.services, kind):
            obj = objects[key]
            assert obj.file is not None
            data = stack.files[obj.file]
            digest = content_digest(data)
            name = versioned_name(obj.engine_name(NS), digest, key)
            body = object_body(obj, NS, name, data, digest)
            ids[(kind, name)], _ = await swarm.create_object(kind, body)
            names[(kind, key)] = name
            bodies[name] = body
    for network in network_specs(stack, NS):
        await swarm.ensure_network(network.name, network.spec)
    specs = service_specs(
        stack,
        NS,
        {},
        default_endpoint_mode="vip",
        default_publish_mode="ingress",
        object_names=names,
    )
    for spec in specs:
        await swarm.query("services/create", "POST", body=with_object_ids(spec.spec, ids))
    return bodies


def _differences(ours: object, theirs: object, path: str = "") -> list[str]:
    """Where two specs differ, as readable key paths with both values."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [
            d
            for key in sorted(set(ours) | set(theirs))
            for d in _differences(ours.get(key), theirs.get(key), f"{path}.{key}")
        ]
    return [] if ours == theirs else [f"{path}: deploybot {ours!r}, docker {theirs!r}"]


async def test_swarmprom_services_match_docker_stack_deploy(swarm_client: Swarm) -> None:
    await _remove_all(swarm_client)
    try:
        docker_configs = await asyncio.to_thread(_docker_stack_deploy)
        by_docker = await _stored(swarm_client)
        await _remove_all(swarm_client)

        created = await _deploy_translation(swarm_client)
        by_deploybot = await _stored(swarm_client)
    finally:
        await _remove_all(swarm_client)

    assert sorted(by_docker) == [
        f"{NS}_{s}"
        for s in (
            "alertmanager", "caddy", "cadvisor", "dockerd-exporter", "grafana", "node-exporter",
            "prometheus", "unsee",
        )
    ]  # fmt: skip
    differences = {
        name: _differences(by_deploybot[name], spec) for name, spec in sorted(by_docker.items())
    }
    assert differences == {name: [] for name in by_docker}
    # The configs hold the same data and docker's labels (plus deploybot's own).
    assert len(created) == len(docker_configs) == 4
    for name, body in created.items():
        theirs = docker_configs[DIGEST_SUFFIX.sub("", name)]
        assert body["Data"] == theirs["Data"]
        assert theirs["Labels"].items() <= body["Labels"].items()
