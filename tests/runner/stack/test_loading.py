"""Reading a stack file: YAML as docker reads it, errors that name the key, warnings,
the one-service stack of a lone Dockerfile."""

from __future__ import annotations

import textwrap

import pytest

from deploybot.runner.stack import (
    BuildSpec,
    StackFileError,
    network_specs,
    parse_stack_file,
    service_specs,
    single_service_stack,
)
from tests.runner.stack.examples import NS, _error, _web_error


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


@pytest.mark.parametrize("key", ["secrets: [db_password]", "configs: [nginx_conf]"])
def test_undefined_secrets_and_configs_are_errors(key: str) -> None:
    error = _web_error(f"{key}\n")

    assert error.key == f"services.web.{key.split(':')[0]}[0]"
    assert "undefined" in error.message and "top-level" in error.message


def test_env_file_needs_the_repository() -> None:
    error = _web_error("env_file: .env\n")

    assert error.key == "services.web.env_file"
    assert "repository" in error.message


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
