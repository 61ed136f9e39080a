"""The domain vocabulary shared by the database, the core, the runner and the schema."""

from __future__ import annotations

import enum


class DeploymentState(enum.Enum):
    """GitHub's deployment states where they fit; SPEED's Pending/Running/Succeeded/Failed map
    onto QUEUED/IN_PROGRESS/SUCCESS/FAILURE."""

    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    ERROR = "ERROR"
    ROLLED_BACK = "ROLLED_BACK"
    CANCELLED = "CANCELLED"
    INACTIVE = "INACTIVE"

    @property
    def is_final(self) -> bool:
        return self not in (DeploymentState.QUEUED, DeploymentState.IN_PROGRESS)


ACTIVE_STATES = (DeploymentState.QUEUED, DeploymentState.IN_PROGRESS)


class DeploymentTrigger(enum.Enum):
    API = "API"
    WEBHOOK = "WEBHOOK"
    ROLLBACK = "ROLLBACK"
    EXTERNAL = "EXTERNAL"
    CLI = "CLI"


class DeploymentStrategy(enum.Enum):
    ROLLING = "ROLLING"
    BLUE_GREEN = "BLUE_GREEN"
    CANARY = "CANARY"
    RECREATE = "RECREATE"


class StepStatus(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"


class ProgressStatus(enum.Enum):
    """Seed 002's progress message status."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    WARNING = "WARNING"


class StepName(enum.Enum):
    FETCH = "fetch"
    BUILD = "build"
    PUSH = "push"
    ROLLOUT = "rollout"
    CONVERGE = "converge"
    PRE_DEPLOY = "pre-deploy"
    CANARY = "canary"
    GREEN = "green"
    HEALTH = "health"
    POST_DEPLOY = "post-deploy"
    ROLLBACK = "rollback"


class LogSource(enum.Enum):
    SYSTEM = "SYSTEM"
    BUILD = "BUILD"
    HOOK = "HOOK"
    SERVICE = "SERVICE"


class LogStream(enum.Enum):
    STDOUT = "STDOUT"
    STDERR = "STDERR"


class ApplicationState(enum.Enum):
    UNKNOWN = "UNKNOWN"
    DEPLOYING = "DEPLOYING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    FAILED = "FAILED"
    ROLLING_BACK = "ROLLING_BACK"


class Health(enum.Enum):
    UNKNOWN = "UNKNOWN"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DEGRADED = "DEGRADED"


class Interval(enum.Enum):
    """The periods delivery metrics are counted in (weeks run Monday to Monday, UTC)."""

    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
