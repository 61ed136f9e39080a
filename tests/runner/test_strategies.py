"""The Swarm specs each strategy, a canary, RECREATE's hold and a hook job are made of."""

from __future__ import annotations

from typing import Any

import pytest

from deploybot.domain import DeploymentStrategy
from deploybot.inputs import RollingUpdate
from deploybot.runner.health import HealthCheckFailed, resolve_url
from deploybot.runner.hooks import job_spec
from deploybot.runner.phases import held
from deploybot.runner.strategies import canary_spec, with_strategy


def spec(**update: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": "shop_web",
        "Labels": {"com.docker.stack.namespace": "shop"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": "reg/shop/web:2@sha256:ab", "Args": ["httpd"]},
            "Networks": [{"Target": "shop_default", "Aliases": ["web"]}],
        },
        "Mode": {"Replicated": {"Replicas": 3}},
        "EndpointSpec": {"Mode": "dnsrr", "Ports": [{"TargetPort": 80, "PublishedPort": 8081}]},
    }
    body.update(update)
    return body


def test_rolling_takes_the_stack_file_then_the_input() -> None:
    assert with_strategy(spec(), DeploymentStrategy.ROLLING, None)["UpdateConfig"] == {
        "Parallelism": 1, "Order": "stop-first", "FailureAction": "pause"
    }  # fmt: skip
    stack = spec(UpdateConfig={"Parallelism": 2, "Delay": 5, "Order": "stop-first"})
    rolling = RollingUpdate(delay=1, order="start-first", failure_action="rollback", monitor=2)
    assert with_strategy(stack, DeploymentStrategy.ROLLING, rolling)["UpdateConfig"] == {
        "Parallelism": 2,
        "Delay": 10**9,
        "Order": "start-first",
        "FailureAction": "rollback",
        "Monitor": 2 * 10**9,
    }
    assert "UpdateConfig" not in stack["TaskTemplate"]  # the input spec is not changed


def test_blue_green_and_recreate_update_all_at_once() -> None:
    stack = spec(UpdateConfig={"Parallelism": 1, "Delay": 5, "Monitor": 7})
    green = with_strategy(stack, DeploymentStrategy.BLUE_GREEN, None)["UpdateConfig"]
    assert green == {
        "Parallelism": 0,
        "Order": "start-first",
        "FailureAction": "pause",
        "Monitor": 7,
    }
    recreate = with_strategy(stack, DeploymentStrategy.RECREATE, None)["UpdateConfig"]
    assert recreate == {"Parallelism": 0, "Order": "stop-first", "Monitor": 7}


def test_recreate_holds_the_old_spec_on_no_node() -> None:
    body = held(spec(), 42)
    assert body["TaskTemplate"]["Placement"]["Constraints"] == [
        "node.labels.com.deploybot.recreate==42"
    ]
    assert body["UpdateConfig"]["Parallelism"] == 0
    assert body["UpdateConfig"]["Order"] == "stop-first"


def test_canary_is_one_task_without_ports_beside_the_service() -> None:
    canary = canary_spec(spec(UpdateConfig={"Parallelism": 1}), "shop_web")
    assert canary["Name"] == "shop_web-canary"
    assert canary["Mode"] == {"Replicated": {"Replicas": 1}}
    assert canary["EndpointSpec"] == {"Mode": "dnsrr"}
    assert canary["TaskTemplate"]["RestartPolicy"] == {"Condition": "none"}
    assert canary["TaskTemplate"]["Networks"][0]["Aliases"] == ["web"]
    assert "com.docker.stack.namespace" not in canary["Labels"]
    assert "UpdateConfig" not in canary


def test_hook_job_runs_the_command_once_in_the_service_image() -> None:
    job = job_spec("shop_pre-deploy-1-1", spec(), "migrate --yes", {"k": "v"})
    container = job["TaskTemplate"]["ContainerSpec"]
    assert container["Command"] == ["sh", "-c", "migrate --yes"]
    assert "Args" not in container and container["Image"] == "reg/shop/web:2@sha256:ab"
    assert job["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert job["TaskTemplate"]["RestartPolicy"] == {"Condition": "none"}
    assert "EndpointSpec" not in job


def test_health_url_paths_use_the_published_port() -> None:
    specs = {"api": spec(EndpointSpec={"Mode": "dnsrr"}), "web": spec()}
    assert resolve_url("/healthz", specs, None) == "http://127.0.0.1:8081/healthz"
    assert resolve_url("http://10.0.0.1:9/x", specs, None) == "http://10.0.0.1:9/x"
    with pytest.raises(HealthCheckFailed):
        resolve_url("/healthz", {"api": specs["api"]}, "api")
