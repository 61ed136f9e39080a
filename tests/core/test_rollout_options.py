"""Rollout options: their JSON round trip, the steps they add, and their input checks."""

from __future__ import annotations

from deploybot.core.rollout_options import (
    HealthCheck,
    Hook,
    RollingUpdate,
    RolloutOptions,
    check_options,
)
from deploybot.domain import DeploymentStrategy, StepName


def test_round_trip_and_defaults() -> None:
    options = RolloutOptions(
        rollback_on_failure=False,
        rolling_update=RollingUpdate(parallelism=2, delay=1.5, order="start-first"),
        canary_period=3,
        health_check=HealthCheck(url="/healthz", retries=2),
        pre_deploy_hooks=[Hook("migrate", "api")],
        post_deploy_hooks=[Hook("warm")],
    )
    assert RolloutOptions.from_json(options.to_json()) == options
    assert RolloutOptions.from_json(None) == RolloutOptions()
    assert RolloutOptions().rollback_on_failure is True


def test_steps_around_the_rollout() -> None:
    options = RolloutOptions(
        health_check=HealthCheck(url="/"),
        pre_deploy_hooks=[Hook("a")],
        post_deploy_hooks=[Hook("b")],
    )
    assert options.steps_around(DeploymentStrategy.CANARY) == (
        [StepName.PRE_DEPLOY, StepName.CANARY],
        [StepName.HEALTH, StepName.POST_DEPLOY],
    )
    assert RolloutOptions().steps_around(DeploymentStrategy.ROLLING) == ([], [])


def test_every_mistake_names_its_field() -> None:
    options = RolloutOptions(
        rolling_update=RollingUpdate(
            parallelism=-1, delay=-2, order="sideways", failure_action="x"
        ),
        canary_period=0,
        health_check=HealthCheck(url="ftp://x", timeout=0, retries=0),
        pre_deploy_hooks=[Hook("  ")],
        post_deploy_hooks=[Hook("ok", "Bad Name")],
    )
    fields = [e.field for e in check_options(options)]
    assert fields == [
        "rollingUpdate.parallelism",
        "rollingUpdate.delay",
        "rollingUpdate.order",
        "rollingUpdate.failureAction",
        "canaryPeriod",
        "healthCheckUrl",
        "healthCheck",
        "healthCheck.retries",
        "preDeployHooks.0.command",
        "postDeployHooks.0.service",
    ]
    assert check_options(RolloutOptions(health_check=HealthCheck(url="https://x.test/h"))) == []
