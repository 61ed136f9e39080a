"""How an application's state and health follow from its services and deployments."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from deploybot.core.applications import LiveService, Replicas, _state, overall_health
from deploybot.domain import ApplicationState, DeploymentState, DeploymentTrigger, Health


def service(health: Health) -> LiveService:
    return LiveService(
        name="web",
        swarm_name="app_web",
        image=None,
        replicas=Replicas(),
        health=health,
        message="",
        checks=[],
        update_state=None,
        configuration={},
        events=[],
    )


def deployment(
    state: DeploymentState, trigger: DeploymentTrigger = DeploymentTrigger.API
) -> object:
    return SimpleNamespace(state=state, trigger=trigger, created_at=datetime.now(UTC))


def test_overall_health() -> None:
    h = Health
    assert overall_health([]) is h.UNKNOWN
    assert overall_health([service(h.HEALTHY), service(h.HEALTHY)]) is h.HEALTHY
    assert overall_health([service(h.HEALTHY), service(h.UNHEALTHY)]) is h.DEGRADED
    assert overall_health([service(h.DEGRADED)]) is h.DEGRADED
    assert overall_health([service(h.UNHEALTHY), service(h.UNHEALTHY)]) is h.UNHEALTHY


def test_state_from_deployments_and_health() -> None:
    s, d, h = ApplicationState, DeploymentState, Health
    assert _state(h.HEALTHY, [deployment(d.IN_PROGRESS)], s.HEALTHY) is s.DEPLOYING
    rollback = deployment(d.IN_PROGRESS, DeploymentTrigger.ROLLBACK)
    assert _state(h.HEALTHY, [rollback], s.HEALTHY) is s.ROLLING_BACK
    assert _state(h.HEALTHY, [deployment(d.FAILURE)], s.FAILED) is s.HEALTHY
    assert _state(h.DEGRADED, [deployment(d.FAILURE)], s.FAILED) is s.FAILED
    # A failed build did not touch the Swarm: what runs is judged by its health.
    assert _state(h.DEGRADED, [deployment(d.FAILURE)], s.HEALTHY) is s.UNHEALTHY
    assert _state(h.UNKNOWN, [], None) is s.UNKNOWN
