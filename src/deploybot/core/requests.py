"""A deploy request's checks: its own fields (no I/O), the application it names, the steps it
plans, and its source as the runner sees it, all before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from deploybot.config import Settings
from deploybot.core.inspectors import DEFAULT_STACK_FILE, SourceInspector
from deploybot.core.policy import (
    DeployPolicy,
    image_violation,
    repository_violation,
    stack_violations,
)
from deploybot.domain import StepName
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.filters import SHA_RE
from deploybot.inputs import DeployRequest, RolloutOptions

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
"""Application, service and dependency names (a Swarm stack namespace must hold them)."""

UPDATE_ORDERS = ("stop-first", "start-first")
FAILURE_ACTIONS = ("pause", "continue", "rollback")


def application_name_from(repository_url: str | None, image: str | None) -> str:
    """`git://host/team/web-app.git` → `web-app`; `registry:5000/team/api:1.2` → `api`."""
    source = repository_url or image or ""
    if image and not repository_url:
        source = source.split("@", 1)[0]
        last = source.rsplit("/", 1)[-1]
        source = last.split(":", 1)[0]
    name = source.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name.removesuffix(".git").lower()
    name = re.sub(r"[^a-z0-9_-]+", "-", name).strip("-_")
    return name[:63] or "app"


def application_of(request: DeployRequest) -> str:
    return request.application or application_name_from(request.repository_url, request.image)


def is_repository_path(path: str) -> bool:
    """Relative, inside the repository (no `..`), not empty."""
    return bool(path.strip()) and not path.startswith("/") and ".." not in path.split("/")


def _invalid(field_name: str, message: str) -> DeploybotError:
    return DeploybotError(ErrorCode.INVALID_INPUT, message, field=field_name)


def _source_errors(request: DeployRequest) -> list[DeploybotError]:
    """What to deploy: a git commit (repositoryUrl with commitSha or ref) or an image."""
    errors = []
    if request.repository_url and request.image:
        errors.append(
            _invalid(
                "image", "give either repositoryUrl (a git deploy) or image (a prebuilt image)"
            )
        )
    elif not request.repository_url and not request.image:
        errors.append(
            _invalid("repositoryUrl", "repositoryUrl (with commitSha or ref) or image is required")
        )
    if request.repository_url is not None and not request.repository_url.strip():
        errors.append(_invalid("repositoryUrl", "repositoryUrl must not be empty"))
    if request.repository_url and not (request.commit_sha or request.ref):
        errors.append(
            _invalid(
                "commitSha", "give the commitSha to deploy, or a ref (branch or tag) to resolve"
            )
        )
    if request.commit_sha and not SHA_RE.match(request.commit_sha):
        errors.append(
            _invalid(
                "commitSha", f"{request.commit_sha!r} is not a commit sha (4 to 40 hex digits)"
            )
        )
    return errors


def _name_errors(request: DeployRequest) -> list[DeploybotError]:
    errors = []
    if request.application is not None and not NAME_RE.match(request.application):
        errors.append(
            _invalid(
                "application",
                "application must be 1-63 lowercase letters, digits, '-' or '_', starting with"
                " a letter or digit",
            )
        )
    if request.service is not None and not NAME_RE.match(request.service):
        errors.append(
            _invalid("service", "service must be 1-63 lowercase letters, digits, '-' or '_'")
        )
    if request.stack_file is not None and not is_repository_path(request.stack_file):
        errors.append(_invalid("stackFile", "stackFile must be a path inside the repository"))
    if request.working_directory is not None and not is_repository_path(request.working_directory):
        errors.append(
            _invalid("workingDirectory", "workingDirectory must be a directory of the repository")
        )
    if request.working_directory is not None and request.image:
        errors.append(_invalid("workingDirectory", "workingDirectory is for git deploys"))
    if request.version is not None and not (0 < len(request.version) <= 255):
        errors.append(_invalid("version", "version must be 1 to 255 characters"))
    if request.idempotency_key is not None and not (0 < len(request.idempotency_key) <= 255):
        errors.append(_invalid("idempotencyKey", "idempotencyKey must be 1 to 255 characters"))
    bad = [d for d in request.dependencies if not NAME_RE.match(d)]
    if bad:
        errors.append(_invalid("dependencies", f"{bad[0]!r} is not an application name"))
    return errors


def check_request(request: DeployRequest, settings: Settings) -> None:
    """The request's own fields, checked without any I/O (ValidationFailed lists them all)."""
    errors: list[DeploybotError] = []
    if request.environment and request.environment != settings.environment:
        errors.append(
            DeploybotError(
                ErrorCode.WRONG_ENVIRONMENT,
                f"this instance deploys to {settings.environment!r}, not"
                f" {request.environment!r}; send the request to that environment's deploybot"
                " or to the relay",
                field="environment",
            )
        )
    errors += _source_errors(request) + _name_errors(request) + check_options(request.rollout)
    if errors:
        raise ValidationFailed(errors)


def _rolling_update_errors(options: RolloutOptions) -> list[DeploybotError]:
    rolling = options.rolling_update
    if rolling is None:
        return []
    errors = []
    if rolling.parallelism is not None and rolling.parallelism < 0:
        errors.append(
            _invalid("rollingUpdate.parallelism", "parallelism must be 0 (all at once) or more")
        )
    for name, value in (("delay", rolling.delay), ("monitor", rolling.monitor)):
        if value is not None and value < 0:
            errors.append(_invalid(f"rollingUpdate.{name}", f"{name} must not be negative"))
    if rolling.order is not None and rolling.order not in UPDATE_ORDERS:
        errors.append(
            _invalid("rollingUpdate.order", f"order must be one of {', '.join(UPDATE_ORDERS)}")
        )
    if rolling.failure_action is not None and rolling.failure_action not in FAILURE_ACTIONS:
        errors.append(
            _invalid("rollingUpdate.failureAction", f"one of {', '.join(FAILURE_ACTIONS)}")
        )
    return errors


def _health_check_errors(options: RolloutOptions) -> list[DeploybotError]:
    health = options.health_check
    if health is None:
        return []
    errors = []
    if not re.match(r"^(https?://[^/\s]+|/)\S*$", health.url):
        errors.append(
            _invalid(
                "healthCheckUrl",
                "healthCheckUrl must be an http(s):// URL or a path (`/healthz`) on the"
                " stack's published port",
            )
        )
    if health.timeout <= 0 or health.interval < 0:
        errors.append(_invalid("healthCheck", "timeout must be positive and interval not negative"))
    if not 1 <= health.retries <= 100:
        errors.append(_invalid("healthCheck.retries", "retries must be between 1 and 100"))
    return errors


def check_options(options: RolloutOptions) -> list[DeploybotError]:
    """Every mistake in the rollout options, each naming its input field."""
    errors = _rolling_update_errors(options)
    if not 0 < options.canary_period <= 3600:
        errors.append(
            _invalid("canaryPeriod", "canaryPeriod must be more than 0 and at most 3600 seconds")
        )
    errors += _health_check_errors(options)
    for name, hooks in (
        ("preDeployHooks", options.pre_deploy_hooks),
        ("postDeployHooks", options.post_deploy_hooks),
    ):
        for index, hook in enumerate(hooks):
            if not hook.command.strip():
                errors.append(_invalid(f"{name}.{index}.command", "a hook needs a command"))
            if hook.service is not None and not NAME_RE.match(hook.service):
                errors.append(
                    _invalid(f"{name}.{index}.service", f"{hook.service!r} is not a service name")
                )
    return errors


def plan_steps(request: DeployRequest, *, builds: bool, has_registry: bool) -> list[StepName]:
    before, after = request.rollout.steps_around(request.strategy)
    if request.image:
        return [StepName.FETCH, *before, StepName.ROLLOUT, StepName.CONVERGE, *after]
    steps = [StepName.FETCH]
    if builds:
        steps.append(StepName.BUILD)
        if has_registry:
            steps.append(StepName.PUSH)
    return [*steps, *before, StepName.ROLLOUT, StepName.CONVERGE, *after]


@dataclass(frozen=True)
class PreparedDeployment:
    """What the checks of a request found: the columns and steps of the deployment to write."""

    application: str
    values: dict[str, Any]
    steps: list[StepName]
    warnings: tuple[str, ...]


def check_source_policy(request: DeployRequest, policy: DeployPolicy) -> None:
    """The deploy policy's rules on the request itself (repository URL, image), checked
    before the source is read: a refused repository is never fetched."""
    if request.repository_url:
        error = repository_violation(policy, request.repository_url.strip())
    else:
        error = image_violation(policy, (request.image or "").strip())
    if error is not None:
        raise ValidationFailed([error])


async def inspect_source(
    settings: Settings,
    inspector: SourceInspector,
    request: DeployRequest,
    application: str,
    policy: DeployPolicy,
) -> PreparedDeployment:
    """The request's source, looked at without changing anything (the runner's preflight),
    and held against the deploy policy (POLICY_VIOLATION naming the file and key)."""
    values: dict[str, Any] = {}
    warnings: tuple[str, ...] = ()
    check_source_policy(request, policy)
    if request.repository_url:
        stack_file = request.stack_file or DEFAULT_STACK_FILE
        info = await inspector.inspect_git(
            request.repository_url.strip(),
            sha=request.commit_sha,
            ref=request.ref,
            stack_file=stack_file,
            application=application,
            working_directory=request.working_directory,
        )
        violations = stack_violations(policy, info.stack_file, info.claims)
        if violations:
            raise ValidationFailed(violations)
        values.update(
            repository_url=request.repository_url.strip(),
            commit_sha=info.commit_sha,
            ref=info.ref,
            commit_message=info.commit_message,
            commit_author=info.commit_author,
            committed_at=info.committed_at,
            version=request.version or info.version,
            stack_file=info.stack_file,
            working_directory=request.working_directory,
        )
        steps = plan_steps(request, builds=info.builds, has_registry=bool(settings.registry))
        warnings = info.warnings
    else:
        assert request.image is not None
        image = await inspector.inspect_image(request.image.strip())
        values.update(
            image=image.image,
            service=request.service or application,
            version=request.version or image.tag or (image.digest or "")[7:19] or "latest",
        )
        steps = plan_steps(request, builds=False, has_registry=False)
    return PreparedDeployment(application, values, steps, warnings)
