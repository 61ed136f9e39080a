"""How a deployment is to be rolled out: update settings, canary period, health URL, hooks,
and whether a failure puts the last good deployment back.

They travel from the request to the runner as one JSON document on the
deployment (`rollout_options`), so a runner in another process reads exactly
what was asked for.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from deploybot.domain import DeploymentStrategy, StepName
from deploybot.errors import DeploybotError, ErrorCode

UPDATE_ORDERS = ("stop-first", "start-first")
FAILURE_ACTIONS = ("pause", "continue", "rollback")
DEFAULT_CANARY_PERIOD = 10.0
_SERVICE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class RollingUpdate:
    """Swarm's `UpdateConfig`; unset fields keep the stack file's `deploy.update_config`."""

    parallelism: int | None = None
    delay: float | None = None
    order: str | None = None
    failure_action: str | None = None
    monitor: float | None = None


@dataclass(frozen=True)
class HealthCheck:
    """The runner polls `url` after the rollout: `retries` tries, `interval` apart."""

    url: str
    timeout: float = 5.0
    interval: float = 2.0
    retries: int = 5


@dataclass(frozen=True)
class Hook:
    """A command run with `sh -c` in a one-off task of `service`'s new image."""

    command: str
    service: str | None = None


@dataclass(frozen=True)
class RolloutOptions:
    rollback_on_failure: bool = True
    rolling_update: RollingUpdate | None = None
    canary_period: float = DEFAULT_CANARY_PERIOD
    health_check: HealthCheck | None = None
    pre_deploy_hooks: list[Hook] = field(default_factory=list)
    post_deploy_hooks: list[Hook] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RolloutOptions:
        """Options as stored; a deployment from before they existed gets the defaults."""
        if not data:
            return cls()
        rolling = data.get("rolling_update")
        health = data.get("health_check")
        return cls(
            rollback_on_failure=bool(data.get("rollback_on_failure", True)),
            rolling_update=RollingUpdate(**rolling) if rolling else None,
            canary_period=float(data.get("canary_period", DEFAULT_CANARY_PERIOD)),
            health_check=HealthCheck(**health) if health else None,
            pre_deploy_hooks=[Hook(**h) for h in data.get("pre_deploy_hooks") or []],
            post_deploy_hooks=[Hook(**h) for h in data.get("post_deploy_hooks") or []],
        )

    def steps_around(self, strategy: DeploymentStrategy) -> tuple[list[StepName], list[StepName]]:
        """The steps these options add before the rollout and after the convergence."""
        before = [StepName.PRE_DEPLOY] if self.pre_deploy_hooks else []
        if strategy is DeploymentStrategy.CANARY:
            before.append(StepName.CANARY)
        elif strategy is DeploymentStrategy.BLUE_GREEN:
            before.append(StepName.GREEN)
        after = [StepName.HEALTH] if self.health_check else []
        if self.post_deploy_hooks:
            after.append(StepName.POST_DEPLOY)
        return before, after


def check_options(options: RolloutOptions) -> list[DeploybotError]:
    """Every mistake in the options, each naming its input field."""
    errors: list[DeploybotError] = []

    def fail(field_name: str, message: str) -> None:
        errors.append(DeploybotError(ErrorCode.INVALID_INPUT, message, field=field_name))

    rolling = options.rolling_update
    if rolling is not None:
        if rolling.parallelism is not None and rolling.parallelism < 0:
            fail("rollingUpdate.parallelism", "parallelism must be 0 (all at once) or more")
        for name, value in (("delay", rolling.delay), ("monitor", rolling.monitor)):
            if value is not None and value < 0:
                fail(f"rollingUpdate.{name}", f"{name} must not be negative")
        if rolling.order is not None and rolling.order not in UPDATE_ORDERS:
            fail("rollingUpdate.order", f"order must be one of {', '.join(UPDATE_ORDERS)}")
        if rolling.failure_action is not None and rolling.failure_action not in FAILURE_ACTIONS:
            fail("rollingUpdate.failureAction", f"one of {', '.join(FAILURE_ACTIONS)}")
    if not 0 < options.canary_period <= 3600:
        fail("canaryPeriod", "canaryPeriod must be more than 0 and at most 3600 seconds")
    health = options.health_check
    if health is not None:
        if not re.match(r"^(https?://[^/\s]+|/)\S*$", health.url):
            fail(
                "healthCheckUrl",
                "healthCheckUrl must be an http(s):// URL or a path (`/healthz`) on the"
                " stack's published port",
            )
        if health.timeout <= 0 or health.interval < 0:
            fail("healthCheck", "timeout must be positive and interval not negative")
        if not 1 <= health.retries <= 100:
            fail("healthCheck.retries", "retries must be between 1 and 100")
    for name, hooks in (
        ("preDeployHooks", options.pre_deploy_hooks),
        ("postDeployHooks", options.post_deploy_hooks),
    ):
        for index, hook in enumerate(hooks):
            if not hook.command.strip():
                fail(f"{name}.{index}.command", "a hook needs a command")
            if hook.service is not None and not _SERVICE_RE.match(hook.service):
                fail(f"{name}.{index}.service", f"{hook.service!r} is not a service name")
    return errors
