"""The networks a stack file creates or expects."""

from __future__ import annotations

import textwrap

from deploybot.runner.stack import network_specs, parse_stack_file, service_specs
from tests.runner.stack.examples import NS, TWO_SERVICES


def test_network_specs_only_used_networks_and_external_ones_flagged() -> None:
    stack = parse_stack_file(
        TWO_SERVICES + "  unused: {}\n  named:\n    name: shared-net\n    driver: bridge\n"
    )

    specs = network_specs(stack, NS)

    assert [(n.name, n.external) for n in specs] == [
        ("app_backend", False),
        ("app_default", False),
        ("traefik-public", True),
    ]
    assert specs[0].spec == {
        "Name": "app_backend",
        "Driver": "overlay",
        "Attachable": True,
        "Internal": False,
        "Labels": {"com.docker.stack.namespace": "app"},
        "Options": {},
    }
    assert specs[2].spec == {"Name": "traefik-public"}


def test_network_spec_with_custom_name_options_and_ipam() -> None:
    stack = parse_stack_file(
        textwrap.dedent(
            """
            services:
              web: {image: nginx, networks: [db]}
            networks:
              db:
                name: shared-db
                internal: true
                driver_opts: {encrypted: "", mtu: 1400}
                labels: [tier=data]
                ipam: {config: [{subnet: 10.10.0.0/24}]}
            """
        )
    )

    [spec] = network_specs(stack, NS)

    assert spec.name == "shared-db"
    assert spec.spec == {
        "Name": "shared-db",
        "Driver": "overlay",
        "Attachable": False,
        "Internal": True,
        "Labels": {"tier": "data", "com.docker.stack.namespace": "app"},
        "Options": {"encrypted": "", "mtu": "1400"},
        "IPAM": {"Driver": "", "Config": [{"Subnet": "10.10.0.0/24"}]},
    }
    web = service_specs(stack, NS, {})[0].spec
    assert web["TaskTemplate"]["Networks"] == [{"Target": "shared-db", "Aliases": ["web"]}]


def test_external_network_without_name_keeps_its_key() -> None:
    stack = parse_stack_file(
        "services:\n  web: {image: x, networks: [proxy]}\nnetworks:\n  proxy:\n    external: true\n"
    )

    assert [(n.name, n.external, n.spec) for n in network_specs(stack, NS)] == [
        ("proxy", True, {"Name": "proxy"})
    ]
