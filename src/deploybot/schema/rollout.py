"""GraphQL inputs of how a deployment rolls out: update settings, health URL, hooks."""

from __future__ import annotations

import enum
from typing import Any

import strawberry

from deploybot.inputs import (
    DEFAULT_CANARY_PERIOD,
    HealthCheck,
    Hook,
    RollingUpdate,
    RolloutOptions,
)


@strawberry.enum(description="Swarm's update order: stop an old task first, or start a new one.")
class UpdateOrder(enum.Enum):
    STOP_FIRST = "stop-first"
    START_FIRST = "start-first"


@strawberry.enum(description="What Swarm does when an updated task fails.")
class UpdateFailureAction(enum.Enum):
    PAUSE = "pause"
    CONTINUE = "continue"
    ROLLBACK = "rollback"


@strawberry.input(
    description="Swarm's update_config for ROLLING (and CANARY's rest); unset fields keep the"
    " stack file's `deploy.update_config`."
)
class RollingUpdateInput:
    parallelism: int | None = strawberry.field(
        default=None, description="Tasks updated at once (0: all)."
    )
    delay: float | None = strawberry.field(default=None, description="Seconds between batches.")
    order: UpdateOrder | None = None
    failure_action: UpdateFailureAction | None = None
    monitor: float | None = strawberry.field(
        default=None, description="Seconds Swarm watches an updated task for failure."
    )


@strawberry.input(description="How the runner polls `healthCheckUrl` after the rollout.")
class HealthCheckInput:
    timeout: float = strawberry.field(default=5.0, description="Seconds one request may take.")
    interval: float = strawberry.field(default=2.0, description="Seconds between tries.")
    retries: int = strawberry.field(default=5, description="Tries before the check fails.")


@strawberry.input(description="A command run with `sh -c` in a one-off task of a service's image.")
class DeployHookInput:
    command: str
    service: str | None = strawberry.field(
        default=None,
        description="The stack service whose new image (and networks, environment) runs it;"
        " defaults to the deployment's service, else the first service by name.",
    )


def rollout_options(
    *,
    rollback_on_failure: bool,
    rolling_update: RollingUpdateInput | None,
    canary_period: float | None,
    health_check_url: str | None,
    health_check: HealthCheckInput | None,
    pre_deploy_hooks: list[DeployHookInput] | None,
    post_deploy_hooks: list[DeployHookInput] | None,
) -> RolloutOptions:
    """The core's options from DeployInput's fields."""
    rolling = None
    if rolling_update is not None:
        rolling = RollingUpdate(
            parallelism=rolling_update.parallelism,
            delay=rolling_update.delay,
            order=rolling_update.order.value if rolling_update.order else None,
            failure_action=(
                rolling_update.failure_action.value if rolling_update.failure_action else None
            ),
            monitor=rolling_update.monitor,
        )
    health = None
    if health_check_url is not None:
        check = health_check or HealthCheckInput()
        health = HealthCheck(
            url=health_check_url.strip(),
            timeout=check.timeout,
            interval=check.interval,
            retries=check.retries,
        )
    return RolloutOptions(
        rollback_on_failure=rollback_on_failure,
        rolling_update=rolling,
        canary_period=DEFAULT_CANARY_PERIOD if canary_period is None else canary_period,
        health_check=health,
        pre_deploy_hooks=[Hook(h.command, h.service) for h in pre_deploy_hooks or []],
        post_deploy_hooks=[Hook(h.command, h.service) for h in post_deploy_hooks or []],
    )


def plain(value: Any) -> Any:
    """Input values as JSON (enums by value, nested inputs as objects) for originalRequest."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def camel_keys(value: Any) -> Any:
    """A stored document with GraphQL's camelCase keys (`rollback_on_failure` → ...)."""
    if isinstance(value, dict):
        return {camel(str(k)): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def camel(name: str) -> str:
    """`rollback_on_failure` → `rollbackOnFailure`."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
