"""Top-level configs and secrets, the services' references to them, and env files:
what docker/cli's loader and convert package make of them, with files from the commit."""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

from deploybot.runner.stack import StackFileError, parse_stack_file, service_specs
from deploybot.runner.stack.file_objects import (
    content_digest,
    object_body,
    referenced_names,
    versioned_name,
)
from deploybot.runner.stack.loading import parse_env_file
from deploybot.runner.stack.model import Invalid

STACK = """
version: "3.8"
services:
  web:
    image: nginx:1
    configs:
      - nginx_conf
      - source: site
        target: /etc/nginx/conf.d/site.conf
        uid: "101"
        gid: "102"
        mode: 0440
    secrets:
      - source: tls_key
        target: tls.key
        mode: 0400
      - db_password
      - shared
configs:
  nginx_conf:
    file: ./nginx/nginx.conf
    labels: [tier=edge]
  site:
    file: ../common/site.conf
    name: site-conf
secrets:
  tls_key:
    file: tls/key.pem
  db_password:
    external: true
    name: deploybot.db_password
  shared:
    external:
      name: org_shared
  unused:
    file: ./not-read.txt
"""
FILES = {
    "deploy/nginx/nginx.conf": b"events {}\n",
    "common/site.conf": b"server {}\n",
    "deploy/tls/key.pem": b"-----BEGIN KEY-----\n",
}


def _read(files: Mapping[str, bytes]) -> Any:
    return lambda path: files.get(path)


def _parse(
    text: str, files: Mapping[str, bytes] = FILES, env: Mapping[str, str] | None = None
) -> Any:
    return parse_stack_file(textwrap.dedent(text), "deploy/stack.yml", env or {}, _read(files))


def _container(stack: Any, names: Mapping[tuple[str, str], str] | None = None) -> dict[str, Any]:
    (spec,) = service_specs(stack, "app", {}, object_names=names)
    return dict(spec.spec["TaskTemplate"]["ContainerSpec"])


def test_files_are_read_relative_to_the_stack_file_and_only_when_used() -> None:
    stack = _parse(STACK)

    assert stack.files == FILES
    assert stack.missing_files == ()
    assert stack.configs["site"].file == "common/site.conf"
    assert stack.secrets["db_password"].kept_secret == "db_password"
    assert stack.secrets["shared"].external and stack.secrets["shared"].name == "org_shared"
    assert stack.secrets["shared"].kept_secret is None


def test_references_as_docker_converts_them() -> None:
    container = _container(_parse(STACK))

    assert container["Configs"] == [
        {
            "File": {"Name": "nginx_conf", "UID": "0", "GID": "0", "Mode": 0o444},
            "ConfigName": "app_nginx_conf",
        },
        {
            "File": {
                "Name": "/etc/nginx/conf.d/site.conf",
                "UID": "101",
                "GID": "102",
                "Mode": 0o440,
            },
            "ConfigName": "site-conf",
        },
    ]
    assert container["Secrets"] == [
        {
            "File": {"Name": "tls.key", "UID": "0", "GID": "0", "Mode": 0o400},
            "SecretName": "app_tls_key",
        },
        {
            "File": {"Name": "db_password", "UID": "0", "GID": "0", "Mode": 0o444},
            "SecretName": "deploybot.db_password",
        },
        {
            "File": {"Name": "shared", "UID": "0", "GID": "0", "Mode": 0o444},
            "SecretName": "org_shared",
        },
    ]


def test_created_names_replace_docker_names() -> None:
    names = {("config", "nginx_conf"): "app_nginx_conf-0123456789ab"}
    container = _container(_parse(STACK), names)

    assert container["Configs"][0]["ConfigName"] == "app_nginx_conf-0123456789ab"
    assert referenced_names({"TaskTemplate": {"ContainerSpec": container}}) == {
        ("config", "app_nginx_conf-0123456789ab"),
        ("config", "site-conf"),
        ("secret", "app_tls_key"),
        ("secret", "deploybot.db_password"),
        ("secret", "org_shared"),
    }


def test_content_names_change_with_the_content() -> None:
    one, two = content_digest(b"a"), content_digest(b"b")

    assert versioned_name("app_conf", one, "configs.conf") == f"app_conf-{one[:12]}"
    assert versioned_name("app_conf", one, "x") != versioned_name("app_conf", two, "x")
    with pytest.raises(Invalid, match="not a valid Swarm name"):
        versioned_name("a" * 60, one, "configs.conf")


def test_object_body_has_docker_labels_and_deploybots() -> None:
    stack = _parse(STACK)
    data = FILES["deploy/nginx/nginx.conf"]
    body = object_body(stack.configs["nginx_conf"], "app", "app_nginx_conf-x", data, "d1")

    assert body["Name"] == "app_nginx_conf-x"
    assert base64.b64decode(body["Data"]) == data
    assert body["Labels"] == {
        "tier": "edge",
        "com.docker.stack.namespace": "app",
        "com.deploybot.managed": "true",
        "com.deploybot.key": "nginx_conf",
        "com.deploybot.digest": "d1",
    }


def test_missing_files_are_all_listed() -> None:
    stack = _parse(STACK, files={"deploy/tls/key.pem": b"k"})

    assert stack.missing_files == (
        ("configs.nginx_conf.file", "deploy/nginx/nginx.conf is not in the deployed commit"),
        ("configs.site.file", "common/site.conf is not in the deployed commit"),
    )


@pytest.mark.parametrize(
    ("definition", "key", "message"),
    [
        ("configs:\n  c: {}", "configs.c", "needs `file:`"),
        ("configs:\n  c: {file: /etc/passwd}", "configs.c.file", "never from the server's disk"),
        ("configs:\n  c: {file: ../../x}", "configs.c.file", "outside the repository"),
        ("secrets:\n  c: {driver: vault}", "secrets.c.driver", "not supported"),
        ("configs:\n  c: {file: x, external: true}", "configs.c.file", "external"),
        ("configs:\n  c: {external: {name: a}, name: b}", "configs.c", "conflict"),
        ("configs:\n  c: {file: x, content: y}", "configs.c.content", "unknown key"),
    ],
)
def test_invalid_definitions(definition: str, key: str, message: str) -> None:
    text = f"services:\n  web:\n    image: x\n{definition}\n"
    with pytest.raises(StackFileError) as caught:
        _parse(text)
    assert caught.value.key == key
    assert message in caught.value.message


def test_duplicate_targets_are_refused() -> None:
    text = """
    services:
      web:
        image: x
        configs: [a, {source: b, target: a}]
    configs:
      a: {file: a}
      b: {file: b}
    """
    with pytest.raises(StackFileError, match="duplicate config target"):
        _parse(text, {"deploy/a": b"", "deploy/b": b""})


def test_interpolated_mode_is_an_integer() -> None:
    text = """
    services:
      web:
        image: x
        secrets: [{source: s, mode: "${MODE}"}]
    secrets:
      s: {file: s}
    """
    stack = _parse(text, {"deploy/s": b"x"}, {"MODE": "256"})
    assert _container(stack)["Secrets"][0]["File"]["Mode"] == 256


def test_env_files_merge_in_order_and_environment_wins() -> None:
    text = """
    services:
      web:
        image: x
        env_file: [base.env, ./local.env]
        environment:
          LEVEL: from-stack
          FROM_VARS:
    """
    files = {
        "deploy/base.env": b'\xef\xbb\xbf# base\nNAME=base\nLEVEL=base\nQUOTED="kept as is"\n',
        "deploy/local.env": b"  NAME=local\n\nFROM_SHELL\nEMPTY=\n",
    }
    stack = _parse(text, files, {"FROM_SHELL": "shell", "FROM_VARS": "vars"})

    assert _container(stack)["Env"] == [
        "EMPTY=",
        "FROM_SHELL=shell",
        "FROM_VARS=vars",
        "LEVEL=from-stack",
        "NAME=local",
        'QUOTED="kept as is"',
    ]


def test_a_missing_env_file_is_listed() -> None:
    text = "services:\n  web:\n    image: x\n    env_file: nope.env\n"
    stack = _parse(text, {})
    assert stack.missing_files == (
        ("services.web.env_file[0]", "deploy/nope.env is not in the deployed commit"),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"BAD KEY=1\n", "contains whitespace"), (b"=1\n", "no variable name"), (b"\xff=1", "UTF-8")],
)
def test_bad_env_files(data: bytes, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        parse_env_file(data, "services.web.env_file[0]")
