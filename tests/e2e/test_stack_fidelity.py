"""The translation held against `docker stack deploy` on a stack file deploybot's authors did
not write (tests/data/stacks/SOURCES.md says where it comes from).

The same text is deployed twice on the real Swarm, one after the other (they publish the
same ingress ports): by `docker stack deploy`, then as the specs deploybot translates it
to (with the CLI's defaults, VIP and ingress, in place of deploybot's for a Swarm without
IPVS). Both are read back with `docker service inspect`,
so the engine's inserted defaults are on both sides, and compared service by service. No
task of either ever runs: their images cannot be pulled here. The published ports are
moved to free ones first (the file publishes 5000, the local registry's port).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploybot.runner.stack import network_specs, parse_stack_file, service_specs
from deploybot.runner.swarm import Swarm
from tests.conftest import DOCKER, docker, remove_stack
from tests.servers import free_port

STACK = Path(__file__).parents[1] / "data" / "stacks" / "example-voting-app.docker-stack.yml"
CLI, BOT = "rn-fidcli", "rn-fidbot"


@pytest.fixture
def stack_text(swarm: str) -> Iterator[str]:
    text = STACK.read_text()
    for published in ("5000", "5001", "8080"):
        text = re.sub(rf"\b{published}:(\d+)", rf"{free_port()}:\1", text)
    for namespace in (CLI, BOT):
        remove_stack(namespace)
    yield text
    for namespace in (CLI, BOT):
        remove_stack(namespace)


def _inspected(namespace: str, services: list[str]) -> dict[str, dict[str, Any]]:
    """Each service's stored spec with the namespace and network ids made comparable."""
    networks = {
        n["ID"]: n["Name"]
        for n in (
            json.loads(line)
            for line in docker("network", "ls", "--format", "{{json .}}").splitlines()
        )
    }
    found = {}
    for service in services:
        spec = json.loads(docker("service", "inspect", f"{namespace}_{service}"))[0]["Spec"]
        for attachment in spec["TaskTemplate"].get("Networks") or []:
            target = attachment["Target"]
            attachment["Target"] = next(
                (name for id_, name in networks.items() if target.startswith(id_)), target
            )
        found[service] = json.loads(json.dumps(spec).replace(namespace, "NS"))
    return found


async def test_translation_matches_docker_stack_deploy(
    stack_text: str, swarm_client: Swarm, tmp_path: Path
) -> None:
    path = tmp_path / "docker-stack.yml"
    path.write_text(stack_text)
    await asyncio.to_thread(
        subprocess.run,
        [DOCKER, "stack", "deploy", "--resolve-image", "never", "-c", str(path), CLI],
        check=True,
        capture_output=True,
        timeout=120,
    )
    stack = parse_stack_file(stack_text, filename="docker-stack.yml")
    services = sorted(stack.services)
    by_cli = _inspected(CLI, services)
    remove_stack(CLI)  # its ingress ports are free again for the same specs
    for network in network_specs(stack, BOT):
        await swarm_client.ensure_network(network.name, network.spec)
    specs = service_specs(
        stack, BOT, {}, default_endpoint_mode="vip", default_publish_mode="ingress"
    )
    for spec in specs:
        await swarm_client.deploy_service(spec.spec)
    assert [s.service for s in specs] == services
    by_bot = _inspected(BOT, services)
    differences = {
        service: (
            json.dumps(by_cli[service], sort_keys=True),
            json.dumps(by_bot[service], sort_keys=True),
        )
        for service in services
        if by_bot[service] != by_cli[service]
    }
    assert differences == {}
    # What the issue found: an untagged image is stored tagged `latest` on both sides.
    worker = by_bot["worker"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert worker == "dockersamples/examplevotingapp_worker:latest"
