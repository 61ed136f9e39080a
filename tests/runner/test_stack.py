"""Unit tests for the compose stack file -> Engine API spec translation."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

from deploybot.runner.stack import (
    BuildSpec,
    StackFileError,
    network_specs,
    parse_stack_file,
    service_specs,
    single_service_stack,
)

NS = "app"
SECOND = 1_000_000_000

TWO_SERVICES = """
version: "3.8"
services:
  web:
    build:
      context: ./web
      dockerfile: docker/Dockerfile.prod
      args: [VERSION=1.2, FROM_ENV]
      target: runtime
    image: example/web:latest
    entrypoint: /docker-entrypoint.sh
    command: gunicorn -b 0.0.0.0:8000 "app:create()"
    environment:
      - DEBUG=0
      - API_KEY
      - UNSET
    labels:
      role: frontend
    healthcheck:
      test: curl -fsS http://localhost:8000/health
      interval: 10s
      timeout: 3s
      start_period: 1m30s
      retries: 3
    ports:
      - "8080:8000"
      - target: 9000
        published: 9000
        protocol: udp
        mode: ingress
    volumes:
      - data:/var/lib/web
      - /etc/ssl/certs:/etc/ssl/certs:ro
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 64m}
    networks:
      backend:
        aliases: [api]
      edge:
    deploy:
      endpoint_mode: vip
      replicas: 3
      labels: {traefik.enable: "true"}
      update_config:
        parallelism: 2
        delay: 10s
        failure_action: rollback
        monitor: 30s
        max_failure_ratio: 0.1
        order: start-first
      resources:
        limits: {cpus: "0.5", memory: 512M, pids: 200}
        reservations: {cpus: "0.25", memory: 128M}
      placement:
        constraints: [node.role == worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
  worker:
    image: example/worker:2
    command: [celery, worker]
    restart: on-failure:5
    deploy:
      mode: global
networks:
  backend:
    attachable: true
  edge:
    external: true
    name: traefik-public
volumes:
  data:
    labels: {backup: daily}
"""


def _stack_specs(
    text: str, images: Mapping[str, str] | None = None, **options: Any
) -> dict[str, dict[str, Any]]:
    stack = parse_stack_file(textwrap.dedent(text), env=options.pop("env", None))
    specs = service_specs(stack, NS, images or {}, **options)
    return {s.service: s.spec for s in specs}


def _web(text: str, **options: Any) -> dict[str, Any]:
    """Spec of a one-service stack `web` whose body is `text` (indented service keys)."""
    body = textwrap.indent(textwrap.dedent(text), "    ")
    return _stack_specs(f"services:\n  web:\n    image: nginx\n{body}", **options)["web"]


def _error(text: str, env: Mapping[str, str] | None = None) -> StackFileError:
    with pytest.raises(StackFileError) as caught:
        parse_stack_file(textwrap.dedent(text), env=env)
    return caught.value


def _web_error(text: str) -> StackFileError:
    body = textwrap.indent(textwrap.dedent(text), "    ")
    return _error(f"services:\n  web:\n    image: nginx\n{body}")


# --------------------------------------------------------------------------- full conversion


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


# --------------------------------------------------------------------------- value formats


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


# --------------------------------------------------------------------------- interpolation


def test_interpolation_forms() -> None:
    env = {"TAG": "v1", "EMPTY": "", "REPLICAS": "4", "PORT": "8080"}
    spec = _stack_specs(
        """
        services:
          web:
            image: example/web:${TAG}
            hostname: ${TAG}-host
            working_dir: /srv/$TAG-ignored
            environment:
              SOFT: ${EMPTY:-soft}
              HARD: ${EMPTY-hard}
              UNSET_SOFT: ${NOPE:-fallback}
              UNSET_HARD: ${NOPE-fallback}
              MISSING: x${NOPE}y
              DOLLARS: $$HOME and $${TAG}
            ports:
              - target: 80
                published: ${PORT}
            deploy:
              replicas: ${REPLICAS}
        """,
        env=env,
    )["web"]

    container = spec["TaskTemplate"]["ContainerSpec"]
    assert container["Image"] == "example/web:v1"
    assert container["Hostname"] == "v1-host"
    # docker/cli quirk, kept for parity: unbraced `$TAG-x` reads `-x` as a default.
    assert container["Dir"] == "/srv/v1"
    assert container["Env"] == [
        "DOLLARS=$HOME and ${TAG}",
        "HARD=",
        "MISSING=xy",
        "SOFT=soft",
        "UNSET_HARD=fallback",
        "UNSET_SOFT=fallback",
    ]
    assert spec["Mode"] == {"Replicated": {"Replicas": 4}}
    assert spec["EndpointSpec"]["Ports"][0]["PublishedPort"] == 8080


def test_required_variable_error_names_key_and_message() -> None:
    error = _error("services:\n  web:\n    image: web:${TAG:?set TAG to deploy}\n")

    assert error.key == "services.web.image"
    assert error.message == "required variable TAG is missing a value: set TAG to deploy"


def test_interpolated_value_of_wrong_type_is_rejected() -> None:
    error = _error(
        "services:\n  web:\n    image: x\n    deploy:\n      replicas: ${N}\n", env={"N": "many"}
    )

    assert error.key == "services.web.deploy.replicas"
    assert "failed to cast" in error.message


def test_environment_keys_without_value_come_from_env_or_are_dropped() -> None:
    stack = parse_stack_file(
        "services:\n  web:\n    image: x\n    environment: [B=2, A, C, D=]\n", env={"A": "from-env"}
    )

    assert stack.services["web"]["environment"] == {"A": "from-env", "B": "2", "D": ""}
    env = service_specs(stack, NS, {})[0].spec["TaskTemplate"]["ContainerSpec"]["Env"]
    assert env == ["A=from-env", "B=2", "D="]


def test_yaml_quirks_follow_docker() -> None:
    stack = parse_stack_file(
        textwrap.dedent(
            """
            x-common: &common
              image: example/app:1
              environment: {RELEASED: 2024-01-31, RATIO: 1.0}
            services:
              web:
                <<: *common
                hostname: web
            """
        )
    )

    web = service_specs(stack, NS, {})[0].spec["TaskTemplate"]["ContainerSpec"]
    assert web["Image"] == "example/app:1"
    assert web["Env"] == ["RATIO=1", "RELEASED=2024-01-31"]


# --------------------------------------------------------------------------- errors


def test_error_str_names_file_and_key() -> None:
    error = StackFileError(
        "docker-compose.stack.yml", "services.web.deploy.replicas", "must be an integer"
    )

    assert (
        str(error) == "docker-compose.stack.yml: services.web.deploy.replicas: must be an integer"
    )
    assert str(StackFileError("f.yml", None, "boom")) == "f.yml: boom"


def test_not_yaml_reports_the_line() -> None:
    with pytest.raises(StackFileError) as caught:
        parse_stack_file("services:\n  web:\n    image: a: b\n", filename="stack.yml")

    assert caught.value.file == "stack.yml"
    assert caught.value.key is None
    assert "line 3" in caught.value.message
    assert "image: a: b" in caught.value.message


def test_duplicate_keys_are_rejected() -> None:
    error = _error("services:\n  web:\n    image: a\n    image: b\n")

    assert "duplicate key 'image'" in error.message
    assert "line 4" in error.message


@pytest.mark.parametrize("text", ["", "just a string\n", "- a\n- list\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    error = _error(text)

    assert error.key is None
    assert "top level must be a mapping" in error.message


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("version: '3.8'\n", "services", "is required"),
        ("services: {}\n", "services", "at least one service"),
        ("services:\n  web: nginx\n", "services.web", "must be a mapping"),
        ("services:\n  _web: {image: x}\n", "services._web", "invalid name"),
        ("servises: {}\nservices:\n  web: {image: x}\n", "servises", "did you mean 'services'"),
        ("version: '2.4'\nservices:\n  web: {image: x}\n", "version", "unsupported"),
    ],
)
def test_structural_errors(text: str, key: str, message: str) -> None:
    error = _error(text)

    assert error.key == key
    assert message in error.message


def test_unknown_service_key_is_named_in_the_message() -> None:
    error = _web_error("deploy:\n  replicass: 2\n")

    assert error.key == "services.web.deploy.replicass"
    assert str(error) == (
        "docker-compose.stack.yml: services.web.deploy.replicass: "
        "unknown key (did you mean 'replicas'?)"
    )


def test_forbidden_key_explains_the_alternative() -> None:
    error = _web_error("mem_limit: 1g\n")

    assert error.key == "services.web.mem_limit"
    assert "deploy.resources" in error.message


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("deploy:\n  replicas: two\n", "services.web.deploy.replicas"),
        ("deploy:\n  replicas: -1\n", "services.web.deploy.replicas"),
        ("ports: '80:80'\n", "services.web.ports"),
        ("environment: {DEBUG: true}\n", "services.web.environment.DEBUG"),
        ("read_only: 'yes'\n", "services.web.read_only"),
        ("deploy:\n  mode: daemon\n", "services.web.deploy.mode"),
    ],
)
def test_wrong_types_name_the_key(body: str, key: str) -> None:
    assert _web_error(body).key == key


def test_replicas_with_global_mode_is_rejected() -> None:
    error = _web_error("deploy: {mode: global, replicas: 2}\n")

    assert error.key == "services.web.deploy.replicas"


def test_ingress_port_with_dnsrr_is_rejected() -> None:
    stack = parse_stack_file("services:\n  web:\n    image: x\n    ports: ['80:80']\n")

    with pytest.raises(StackFileError) as caught:
        service_specs(stack, NS, {}, default_publish_mode="ingress")

    assert caught.value.key == "services.web.ports"
    assert "ingress" in caught.value.message


def test_explicit_ingress_port_with_explicit_dnsrr_fails_at_parse_time() -> None:
    error = _web_error(
        "deploy: {endpoint_mode: dnsrr}\nports:\n  - {target: 80, published: 80, mode: ingress}\n"
    )

    assert error.key == "services.web.ports"


@pytest.mark.parametrize(
    "volume", ["./data:/data", "~/data:/data", "{type: bind, source: data, target: /data}"]
)
def test_relative_bind_mounts_are_rejected(volume: str) -> None:
    error = _web_error(f"volumes:\n  - {volume}\n")

    assert error.key == "services.web.volumes[0]"
    assert "absolute path" in error.message


def test_undefined_volume_and_network_are_rejected() -> None:
    assert _web_error("volumes: ['data:/data']\n").message.startswith("undefined volume 'data'")
    assert _web_error("networks: [backend]\n").key == "services.web.networks"


def test_service_without_image_is_rejected_at_conversion() -> None:
    stack = parse_stack_file("services:\n  web:\n    build: .\n  db:\n    image: postgres:16\n")

    with pytest.raises(StackFileError) as caught:
        service_specs(stack, NS, {})

    assert caught.value.key == "services.web.image"
    specs = service_specs(stack, NS, {"web": "registry/web:1"})
    assert [s.spec["TaskTemplate"]["ContainerSpec"]["Image"] for s in specs] == [
        "postgres:16",
        "registry/web:1",
    ]


@pytest.mark.parametrize(
    "key", ["secrets: [db_password]", "configs: [nginx_conf]", "env_file: .env"]
)
def test_secrets_configs_and_env_files_are_not_supported_yet(key: str) -> None:
    error = _web_error(f"{key}\n")

    assert error.key == f"services.web.{key.split(':')[0]}"
    assert "not supported yet" in error.message


@pytest.mark.parametrize(
    "build",
    ["../outside", "/abs/path", "{context: ., dockerfile: ../../Dockerfile}", "https://x/y.git"],
)
def test_build_paths_must_stay_in_the_repository(build: str) -> None:
    error = _error(f"services:\n  web:\n    build: {build}\n")

    assert error.key is not None
    assert error.key.startswith("services.web.build")


def test_ignored_settings_become_warnings() -> None:
    stack = parse_stack_file(
        "services:\n  web:\n    image: x\n    privileged: true\n    depends_on: [db]\n"
        "  db:\n    image: postgres\n"
    )

    assert stack.warnings == (
        "services.web.depends_on: ignored by docker stack deploy",
        "services.web.privileged: ignored by docker stack deploy",
    )


# --------------------------------------------------------------------------- single service


def test_single_service_stack() -> None:
    stack = single_service_stack("app", "docker/Dockerfile")

    assert stack.builds == {
        "app": BuildSpec(
            service="app", context=".", dockerfile="docker/Dockerfile", args={}, target=None
        )
    }
    [service] = service_specs(stack, "demo", {"app": "127.0.0.1:5000/demo/app:v1"})
    assert service.name == "demo_app"
    assert service.spec["Mode"] == {"Replicated": {"Replicas": 1}}
    assert service.spec["TaskTemplate"]["Networks"] == [
        {"Target": "demo_default", "Aliases": ["app"]}
    ]
    assert [n.name for n in network_specs(stack, "demo")] == ["demo_default"]


def test_single_service_stack_rejects_bad_names() -> None:
    with pytest.raises(StackFileError):
        single_service_stack("-app")
    with pytest.raises(StackFileError):
        single_service_stack("app", "../Dockerfile")
