"""Compose values read as docker reads them: durations, sizes, CPUs, ports, volumes."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from deploybot.runner.stack import parse_stack_file, service_specs
from tests.runner.stack.examples import NS, SECOND, _web, _web_error


@pytest.mark.parametrize(
    ("duration", "nanoseconds"),
    [
        ("10s", 10 * SECOND),
        ("1m30s", 90 * SECOND),
        ("500ms", 500_000_000),
        ("1h", 3600 * SECOND),
        ("1.5h", 5400 * SECOND),
        ("2m3.5s", 123_500_000_000),
        ("250us", 250_000),
        ("0", 0),
    ],
)
def test_durations_are_go_durations_in_nanoseconds(duration: str, nanoseconds: int) -> None:
    spec = _web(f"stop_grace_period: '{duration}'\n")

    assert spec["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"] == nanoseconds


@pytest.mark.parametrize("duration", ["'10'", "10", "10x", "''", "s", "1m 30s"])
def test_bad_durations_name_the_key(duration: str) -> None:
    error = _web_error(f"healthcheck:\n  interval: {duration}\n")

    assert error.key == "services.web.healthcheck.interval"


@pytest.mark.parametrize(
    ("memory", "size"),
    [
        ("50M", 50 * 1024**2),
        ("1g", 1024**3),
        ("512k", 512 * 1024),
        ("1GiB", 1024**3),
        ("2mb", 2 * 1024**2),
        ("1.5g", 1536 * 1024**2),
        ("100b", 100),
        ("4096", 4096),
        (4096, 4096),
    ],
)
def test_memory_units_are_binary(memory: str | int, size: int) -> None:
    spec = _web(f"deploy:\n  resources:\n    limits:\n      memory: {memory}\n")

    assert spec["TaskTemplate"]["Resources"]["Limits"] == {"MemoryBytes": size}


@pytest.mark.parametrize("memory", ["lots", "1x", "1gg", "-1"])
def test_bad_memory_names_the_key(memory: str) -> None:
    error = _web_error(f"deploy:\n  resources:\n    reservations:\n      memory: '{memory}'\n")

    assert error.key == "services.web.deploy.resources.reservations.memory"


@pytest.mark.parametrize(
    ("cpus", "nano"), [("'0.5'", 500_000_000), ("2", 2 * SECOND), ("0.001", 1_000_000)]
)
def test_cpus_become_nano_cpus(cpus: str, nano: int) -> None:
    spec = _web(f"deploy:\n  resources:\n    limits:\n      cpus: {cpus}\n")

    assert spec["TaskTemplate"]["Resources"]["Limits"] == {"NanoCPUs": nano}


def test_too_precise_cpus_are_rejected() -> None:
    error = _web_error("deploy:\n  resources:\n    limits:\n      cpus: '0.0000000001'\n")

    assert error.key == "services.web.deploy.resources.limits.cpus"
    assert "too precise" in error.message


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ("'80'", [{"Protocol": "tcp", "TargetPort": 80, "PublishMode": "host"}]),
        (
            "'127.0.0.1:53:53/udp'",
            [{"Protocol": "udp", "TargetPort": 53, "PublishedPort": 53, "PublishMode": "host"}],
        ),
        (
            "'8000-8001:80-81'",
            [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8000, "PublishMode": "host"},
                {"Protocol": "tcp", "TargetPort": 81, "PublishedPort": 8001, "PublishMode": "host"},
            ],
        ),
        (
            "{target: 80, published: 8080}",
            [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"}],
        ),
    ],
)
def test_port_syntaxes(port: str, expected: list[dict[str, Any]]) -> None:
    spec = _web(f"ports:\n  - {port}\n")

    assert spec["EndpointSpec"] == {"Mode": "dnsrr", "Ports": expected}


@pytest.mark.parametrize("port", ["'80:80:80:80'", "'8080:80/tcpx'", "'70000:80'", "'1-3:1-2'"])
def test_bad_ports_name_the_list_entry(port: str) -> None:
    error = _web_error(f"ports:\n  - {port}\n")

    assert error.key == "services.web.ports[0]"


def test_publish_and_endpoint_defaults_can_be_docker_s() -> None:
    spec = _web("ports: ['8080:80']\n", default_endpoint_mode="vip", default_publish_mode="ingress")

    assert spec["EndpointSpec"] == {
        "Mode": "vip",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}
        ],
    }


def test_volume_syntaxes() -> None:
    stack = parse_stack_file(
        textwrap.dedent(
            """
            services:
              web:
                image: nginx
                volumes:
                  - /cache
                  - shared:/shared:nocopy
                  - type: bind
                    source: /run/app
                    target: /run/app
                    bind: {propagation: rshared}
            volumes:
              shared:
                external: true
                name: team-shared
            """
        )
    )

    mounts = service_specs(stack, NS, {})[0].spec["TaskTemplate"]["ContainerSpec"]["Mounts"]

    assert mounts == [
        {"Type": "volume", "Target": "/cache"},
        {
            "Type": "volume",
            "Source": "team-shared",
            "Target": "/shared",
            "VolumeOptions": {"NoCopy": True},
        },
        {
            "Type": "bind",
            "Source": "/run/app",
            "Target": "/run/app",
            "BindOptions": {"Propagation": "rshared"},
        },
    ]
