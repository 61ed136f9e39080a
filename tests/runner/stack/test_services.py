"""A stack file's services converted to Engine API ServiceSpecs."""

from __future__ import annotations

from typing import Any

import pytest

from deploybot.runner.stack import BuildSpec, parse_stack_file, service_specs
from deploybot.runner.stack.images import normalize_image
from tests.runner.stack.examples import NS, SECOND, TWO_SERVICES, _stack_specs, _web


@pytest.fixture
def two_services() -> dict[str, dict[str, Any]]:
    return _stack_specs(
        TWO_SERVICES,
        images={"web": "127.0.0.1:5000/app/web:v1@sha256:abc"},
        labels={"deploybot.deployment": "42"},
        env={"API_KEY": "s3cret", "FROM_ENV": "yes"},
    )


def test_build_spec_is_recorded_with_normalised_paths() -> None:
    stack = parse_stack_file(TWO_SERVICES, env={"FROM_ENV": "yes"})

    assert stack.builds == {
        "web": BuildSpec(
            service="web",
            context="web",
            dockerfile="docker/Dockerfile.prod",
            args={"VERSION": "1.2", "FROM_ENV": "yes"},
            target="runtime",
        )
    }


def test_services_are_sorted_and_namespaced(two_services: dict[str, dict[str, Any]]) -> None:
    stack = parse_stack_file(TWO_SERVICES)
    specs = service_specs(stack, NS, {"web": "web:v1"})

    assert [(s.name, s.service) for s in specs] == [("app_web", "web"), ("app_worker", "worker")]
    assert two_services["web"]["Name"] == "app_web"


def test_service_labels_combine_deploy_labels_extra_labels_and_stack_labels(
    two_services: dict[str, dict[str, Any]],
) -> None:
    assert two_services["web"]["Labels"] == {
        "traefik.enable": "true",
        "deploybot.deployment": "42",
        "com.docker.stack.namespace": "app",
        "com.docker.stack.image": "127.0.0.1:5000/app/web:v1@sha256:abc",
    }
    assert two_services["worker"]["Labels"]["com.docker.stack.image"] == "example/worker:2"


@pytest.mark.parametrize(
    ("image", "sent"),
    [
        ("redis", "redis:latest"),
        ("docker.io/library/redis", "redis:latest"),
        ("docker.io/grafana/grafana", "grafana/grafana:latest"),
        ("stefanprodan/caddy", "stefanprodan/caddy:latest"),
        ("127.0.0.1:5000/app/web", "127.0.0.1:5000/app/web:latest"),
        ("127.0.0.1:5000/app/web:v1", "127.0.0.1:5000/app/web:v1"),
        ("redis@sha256:abc", "redis@sha256:abc"),
    ],
)
def test_untagged_images_get_latest_as_docker_sends_them(image: str, sent: str) -> None:
    assert normalize_image(image) == sent


def test_container_spec(two_services: dict[str, dict[str, Any]]) -> None:
    container = two_services["web"]["TaskTemplate"]["ContainerSpec"]

    assert container == {
        "Image": "127.0.0.1:5000/app/web:v1@sha256:abc",
        "Labels": {"role": "frontend", "com.docker.stack.namespace": "app"},
        "Command": ["/docker-entrypoint.sh"],
        "Args": ["gunicorn", "-b", "0.0.0.0:8000", "app:create()"],
        "Env": ["API_KEY=s3cret", "DEBUG=0"],
        "Mounts": [
            {
                "Type": "volume",
                "Source": "app_data",
                "Target": "/var/lib/web",
                "VolumeOptions": {
                    "Labels": {"backup": "daily", "com.docker.stack.namespace": "app"}
                },
            },
            {
                "Type": "bind",
                "Source": "/etc/ssl/certs",
                "Target": "/etc/ssl/certs",
                "ReadOnly": True,
            },
            {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 64 * 1024**2}},
        ],
        "Healthcheck": {
            "Test": ["CMD-SHELL", "curl -fsS http://localhost:8000/health"],
            "Interval": 10 * SECOND,
            "Timeout": 3 * SECOND,
            "StartPeriod": 90 * SECOND,
            "Retries": 3,
        },
        "Privileges": {"CredentialSpec": None, "SELinuxContext": None},  # as docker sends it
    }
    worker = two_services["worker"]["TaskTemplate"]["ContainerSpec"]
    assert worker["Args"] == ["celery", "worker"]
    assert "Command" not in worker


def test_deploy_settings(two_services: dict[str, dict[str, Any]]) -> None:
    web = two_services["web"]

    assert web["Mode"] == {"Replicated": {"Replicas": 3}}
    assert web["UpdateConfig"] == {
        "Parallelism": 2,
        "Delay": 10 * SECOND,
        "FailureAction": "rollback",
        "Monitor": 30 * SECOND,
        "MaxFailureRatio": 0.1,
        "Order": "start-first",
    }
    assert "RollbackConfig" not in web
    assert web["TaskTemplate"]["Resources"] == {
        "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 512 * 1024**2, "Pids": 200},
        "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 128 * 1024**2},
    }
    assert web["TaskTemplate"]["Placement"] == {
        "Constraints": ["node.role == worker"],
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
        "MaxReplicas": 2,
    }
    assert "RestartPolicy" not in web["TaskTemplate"]


def test_global_service_with_legacy_restart(two_services: dict[str, dict[str, Any]]) -> None:
    worker = two_services["worker"]

    assert worker["Mode"] == {"Global": {}}
    assert worker["TaskTemplate"]["RestartPolicy"] == {"Condition": "on-failure", "MaxAttempts": 5}
    assert worker["TaskTemplate"]["Resources"] == {}
    assert worker["TaskTemplate"]["Placement"] == {}
    assert "UpdateConfig" not in worker


def test_endpoint_spec_and_ports(two_services: dict[str, dict[str, Any]]) -> None:
    assert two_services["web"]["EndpointSpec"] == {
        "Mode": "vip",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 8000, "PublishedPort": 8080, "PublishMode": "host"},
            {
                "Protocol": "udp",
                "TargetPort": 9000,
                "PublishedPort": 9000,
                "PublishMode": "ingress",
            },
        ],
    }
    assert two_services["worker"]["EndpointSpec"] == {"Mode": "dnsrr"}


def test_network_attachments(two_services: dict[str, dict[str, Any]]) -> None:
    assert two_services["web"]["TaskTemplate"]["Networks"] == [
        {"Target": "app_backend", "Aliases": ["api", "web"]},
        {"Target": "traefik-public", "Aliases": ["web"]},
    ]
    assert two_services["worker"]["TaskTemplate"]["Networks"] == [
        {"Target": "app_default", "Aliases": ["worker"]}
    ]


# --------------------------------------------------------------------------- other fields


def test_container_options() -> None:
    container = _web(
        """
        working_dir: /srv
        user: "1000:1000"
        hostname: web-host
        stop_signal: SIGINT
        init: false
        read_only: true
        tty: true
        stdin_open: true
        extra_hosts: ["db.internal:10.0.0.5", "v6:::1"]
        dns: [1.1.1.1]
        dns_search: example.com
        sysctls: {net.core.somaxconn: 1024}
        cap_add: [net_admin, CAP_SYS_TIME]
        cap_drop: [ALL]
        ulimits: {nofile: {soft: 1024, hard: 4096}, nproc: 512}
        logging: {driver: json-file, options: {max-size: 10m, max-file: 3}}
        """
    )["TaskTemplate"]

    spec = container["ContainerSpec"]
    assert {k: spec[k] for k in ("Dir", "User", "Hostname", "StopSignal", "Init")} == {
        "Dir": "/srv",
        "User": "1000:1000",
        "Hostname": "web-host",
        "StopSignal": "SIGINT",
        "Init": False,
    }
    assert (spec["ReadOnly"], spec["TTY"], spec["OpenStdin"]) == (True, True, True)
    assert spec["Hosts"] == ["10.0.0.5 db.internal", "::1 v6"]
    assert spec["DNSConfig"] == {"Nameservers": ["1.1.1.1"], "Search": ["example.com"]}
    assert spec["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert spec["CapabilityAdd"] == ["CAP_NET_ADMIN", "CAP_SYS_TIME"]
    assert spec["CapabilityDrop"] == ["ALL"]
    assert spec["Ulimits"] == [
        {"Name": "nofile", "Soft": 1024, "Hard": 4096},
        {"Name": "nproc", "Soft": 512, "Hard": 512},
    ]
    assert container["LogDriver"] == {
        "Name": "json-file",
        "Options": {"max-size": "10m", "max-file": "3"},
    }


def test_healthcheck_disable_and_exec_form() -> None:
    disabled = _web("healthcheck: {disable: true}\n")
    exec_form = _web("healthcheck:\n  test: [CMD, /bin/check, --fast]\n")

    assert disabled["TaskTemplate"]["ContainerSpec"]["Healthcheck"] == {"Test": ["NONE"]}
    assert exec_form["TaskTemplate"]["ContainerSpec"]["Healthcheck"] == {
        "Test": ["CMD", "/bin/check", "--fast"]
    }


@pytest.mark.parametrize(
    ("deploy", "mode"),
    [
        ("{}", {"Replicated": {"Replicas": 1}}),
        ("{replicas: 0}", {"Replicated": {"Replicas": 0}}),
        (
            "{mode: replicated-job, replicas: 4}",
            {"ReplicatedJob": {"MaxConcurrent": 4, "TotalCompletions": 4}},
        ),
        ("{mode: global-job}", {"GlobalJob": {}}),
    ],
)
def test_deploy_modes(deploy: str, mode: dict[str, Any]) -> None:
    assert _web(f"deploy: {deploy}\n")["Mode"] == mode


def test_update_and_rollback_config_defaults_when_present() -> None:
    spec = _web("deploy:\n  update_config: {}\n  rollback_config: {order: stop-first}\n")

    assert spec["UpdateConfig"] == {"Parallelism": 1, "MaxFailureRatio": 0, "Order": ""}
    assert spec["RollbackConfig"] == {"Parallelism": 1, "MaxFailureRatio": 0, "Order": "stop-first"}


@pytest.mark.parametrize(
    ("restart", "policy"),
    [
        ("always", {"Condition": "any"}),
        ("unless-stopped", {"Condition": "any"}),
        ("on-failure", {"Condition": "on-failure"}),
        ("'no'", None),
    ],
)
def test_legacy_restart_policies(restart: str, policy: dict[str, Any] | None) -> None:
    assert _web(f"restart: {restart}\n")["TaskTemplate"].get("RestartPolicy") == policy


def test_deploy_restart_policy_wins_over_restart() -> None:
    spec = _web(
        "restart: always\ndeploy:\n  restart_policy:\n"
        "    condition: on-failure\n    delay: 5s\n    max_attempts: 0\n    window: 1m\n"
    )

    assert spec["TaskTemplate"]["RestartPolicy"] == {
        "Condition": "on-failure",
        "Delay": 5 * SECOND,
        "MaxAttempts": 0,
        "Window": 60 * SECOND,
    }
