"""Stack checks against the platform, without deploying (the Swarm's own ports are tested
end to end in tests/e2e/test_admission_swarm.py)."""

from __future__ import annotations

from pathlib import Path

from deploybot.config import Settings
from deploybot.runner.stack import parse_stack_file
from deploybot.runner.stack.platform import check_stack_on_swarm
from deploybot.runner.swarm import Swarm

TWO_ON_ONE_PORT = """services:
  a:
    image: deploybot/busybox:latest
    ports: [{target: 80, published: 18081, mode: host}]
  b:
    image: deploybot/busybox:latest
    ports: [{target: 81, published: 18081, mode: host}]
"""

VIP_INGRESS = """services:
  web:
    image: deploybot/busybox:latest
    ports: [{target: 80, published: 18082, mode: ingress}]
    deploy: {endpoint_mode: vip}
"""


async def test_two_services_of_a_stack_on_one_port(swarm: str, swarm_client: Swarm) -> None:
    stack = parse_stack_file(TWO_ON_ONE_PORT)
    settings = Settings(docker_host=swarm)
    errors, _ = await check_stack_on_swarm(settings, swarm_client, stack, "ad-ports")
    assert [e.message for e in errors] == [
        "docker-compose.stack.yml: services.b.ports: port 18081/tcp is also published by a"
    ]


async def test_ingress_and_vip_need_a_routing_mesh(swarm: str, swarm_client: Swarm) -> None:
    stack = parse_stack_file(VIP_INGRESS)
    settings = Settings(docker_host=swarm)
    errors, warnings = await check_stack_on_swarm(settings, swarm_client, stack, "ad-vip")
    assert len(errors) == 1 and "no routing mesh" in errors[0].message
    assert "vip needs IPVS" in warnings[0]
    # Where the operator says the platform has the mesh, both are fine.
    mesh = Settings(docker_host=swarm, publish_mode="ingress", endpoint_mode="vip")
    assert await check_stack_on_swarm(mesh, swarm_client, stack, "ad-vip") == ([], [])


async def test_unreachable_docker_only_warns(tmp_path: Path) -> None:
    settings = Settings(docker_host=f"unix://{tmp_path}/no-docker.sock")
    one = TWO_ON_ONE_PORT.split("  b:")[0]
    unreachable = Swarm(settings.docker_host)
    try:
        errors, warnings = await check_stack_on_swarm(
            settings, unreachable, parse_stack_file(one), "ad-x"
        )
    finally:
        await unreachable.close()
    assert errors == []
    assert warnings[0].startswith("published ports not checked against the Swarm")
