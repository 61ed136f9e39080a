"""Typed requests: rollout options' JSON round trip and the steps they add."""

from __future__ import annotations

from deploybot.domain import DeploymentStrategy, StepName
from deploybot.inputs import HealthCheck, Hook, RollingUpdate, RolloutOptions


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
