"""Deployment Manager (seed 002) under `/api/v1/deployments`: deploy, rollback, status, list,
validate, health, and the progress WebSocket, with the seed's response shapes, status codes
and error format (`{"error": {code, message, details: {deployment, operation, cause},
timestamp}}`).

A Deployment Manager "deployment" is named: here it is the application of that name on this
instance's environment. Deploy and rollback answer when the deployment has ended, as the
seed's client expects (`?wait=false`: as soon as it is queued); meanwhile its progress is
on `/api/v1/deployments/{name}/progress`.

Longer than 600 lines on purpose: it is one seed's whole surface (its routes, response
shapes and error format together), as `speed.py`, `deis.py` and `sponge.py` are theirs;
the work itself is the backend's.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from spectree import Response as Doc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from deploybot.backend.local import LocalBackend
from deploybot.domain import ApplicationState, DeploymentState, DeploymentStrategy, StepStatus
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.filters import SHA_RE, DeploymentFilter
from deploybot.inputs import (
    DeploymentRef,
    DeployRequest,
    HealthCheck,
    Hook,
    PageRequest,
    RollbackRequest,
    RolloutOptions,
)
from deploybot.records import (
    ApplicationStatus,
    DeploymentRecord,
    Progress,
    Severity,
    StepRecord,
    ValidationReport,
)
from deploybot.rest.common import (
    BodyError,
    backend_of,
    go_duration,
    parse,
    read_json,
    rfc3339,
    waited,
)
from deploybot.rest.openapi import api
from deploybot.times import seconds_between, utcnow
from deploybot.web.auth import NotAuthenticated

TAG = "Deployment Manager"
BASE = "/api/v1/deployments"
DEFAULT_LIMIT = 50

STRATEGIES = {
    "rolling": DeploymentStrategy.ROLLING,
    "blue-green": DeploymentStrategy.BLUE_GREEN,
    "canary": DeploymentStrategy.CANARY,
    "recreate": DeploymentStrategy.RECREATE,
}

#: deploybot's codes in the seed's vocabulary (the seed lists only its own eight).
SEED_CODE = {
    ErrorCode.INVALID_INPUT: ErrorCode.INVALID_DEPLOYMENT_SPEC,
    ErrorCode.WRONG_ENVIRONMENT: ErrorCode.INVALID_DEPLOYMENT_SPEC,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: ErrorCode.INVALID_DEPLOYMENT_SPEC,
}
STATUS_OF = {
    ErrorCode.DEPLOYMENT_NOT_FOUND: 404,
    ErrorCode.DEPLOYMENT_IN_PROGRESS: 409,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.DOCKER_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.ROLLBACK_FAILED: 500,
    ErrorCode.HEALTH_CHECK_FAILED: 500,
    ErrorCode.BUILD_FAILED: 500,
    ErrorCode.ROLLOUT_FAILED: 500,
    ErrorCode.CONVERGE_TIMEOUT: 500,
    ErrorCode.HOOK_FAILED: 500,
    ErrorCode.RUNNER_LOST: 500,
}


# --- the seed's shapes ----------------------------------------------------------------------


class DeploySpec(BaseModel):
    name: str = Field(description="The application; defaults to nothing: required.")
    version: str | None = Field(
        default=None,
        description="Version to deploy: a tag, branch or commit sha of the artifact's"
        " repository (or the label of an image), unless artifact_path names one after `#`.",
    )
    environment: str | None = None
    strategy: Literal["rolling", "blue-green", "canary", "recreate"] = "rolling"
    artifact_path: str | None = Field(
        default=None,
        description="A git repository URL (optionally `URL#ref-or-sha`) or an image reference.",
    )
    working_directory: str | None = Field(
        default=None, description="Repository subdirectory of the stack file and build contexts."
    )
    service_name: str | None = Field(default=None, description="Service an image deploy updates.")
    health_check_url: str | None = None
    rollback_on_failure: bool = True
    dependencies: list[str] = Field(default_factory=list)
    pre_deploy_hooks: list[str] = Field(default_factory=list)
    post_deploy_hooks: list[str] = Field(default_factory=list)


class ValidateSpec(BaseModel):
    name: str
    version: str | None = None
    artifact_path: str | None = None
    strategy: str | None = None
    dependencies: list[str] = Field(default_factory=list)
    environment: str | None = None
    working_directory: str | None = None


class Step(BaseModel):
    name: str
    status: Literal["running", "completed", "failed"]
    message: str | None
    start_time: str | None
    end_time: str | None
    error: str | None = None


class DeployResult(BaseModel):
    id: int = Field(description="deploybot's number of the deployment (an addition).")
    version: str | None
    start_time: str | None
    end_time: str | None
    duration: str | None = Field(description="Go-style, e.g. 5m0s.")
    success: bool
    message: str
    previous_version: str | None
    steps: list[Step]


class RollbackBody(BaseModel):
    version: str | None = None


class RollbackResult(BaseModel):
    message: str
    version: str | None
    timestamp: str


class ErrorDetails(BaseModel):
    deployment: str | None
    operation: str
    cause: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: ErrorDetails
    timestamp: str


class ErrorAnswer(BaseModel):
    error: ErrorBody


class Replicas(BaseModel):
    desired: int
    available: int
    ready: int
    updated: int


class Event(BaseModel):
    timestamp: str
    type: Literal["info", "warning", "error"]
    message: str
    source: str


class StatusAnswer(BaseModel):
    name: str
    version: str | None
    environment: str
    state: Literal["unknown", "deploying", "healthy", "unhealthy", "failed", "rolling_back"]
    health: Literal["unknown", "healthy", "unhealthy", "degraded"]
    last_updated: str | None
    replicas: Replicas
    configuration: dict[str, Any]
    events: list[Event]


class ListItem(BaseModel):
    name: str
    version: str | None
    environment: str
    state: str
    health: str
    updated_at: str | None


class ListAnswer(BaseModel):
    deployments: list[ListItem]
    total: int
    limit: int
    offset: int


class ListQuery(BaseModel):
    environment: str | None = None
    state: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


class ValidationIssue(BaseModel):
    field: str | None
    message: str
    severity: Literal["error", "warning"]


class ValidationWarning(BaseModel):
    field: str | None
    message: str


class ValidateAnswer(BaseModel):
    valid: bool
    issues: list[ValidationIssue]
    warnings: list[ValidationWarning]


class Check(BaseModel):
    name: str
    status: str
    message: str | None
    duration: str | None
    last_run: str | None


class Component(BaseModel):
    name: str
    status: str
    message: str
    checks: list[Check]


class HealthAnswer(BaseModel):
    overall: Literal["healthy", "unhealthy", "degraded", "unknown"]
    components: dict[str, Component]
    last_check: str | None
    message: str


class ProgressMessage(BaseModel):
    """What the progress WebSocket sends (one JSON text frame each)."""

    step: str | None
    status: Literal["running", "success", "failed", "warning"]
    message: str
    progress_pct: int
    timestamp: str | None


# --- errors ---------------------------------------------------------------------------------


def error(
    status: int, code: ErrorCode | str, message: str, deployment: str | None, operation: str
) -> JSONResponse:
    body = {
        "error": {
            "code": str(code),
            "message": message,
            "details": {"deployment": deployment, "operation": operation, "cause": message},
            "timestamp": rfc3339(utcnow()),
        }
    }
    return JSONResponse(body, status_code=status)


def failure(
    exc: DeploybotError | ValidationFailed | BodyError, deployment: str | None, operation: str
) -> JSONResponse:
    if isinstance(exc, BodyError):
        return error(400, ErrorCode.INVALID_DEPLOYMENT_SPEC, exc.message, deployment, operation)
    if isinstance(exc, ValidationFailed):
        first = exc.errors[0]
        code = SEED_CODE.get(first.code, first.code)
        message = "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in exc.errors)
        return error(STATUS_OF.get(first.code, 400), code, message, deployment, operation)
    code = SEED_CODE.get(exc.code, exc.code)
    message = f"{exc.field}: {exc.message}" if exc.field else exc.message
    return waited(error(STATUS_OF.get(exc.code, 400), code, message, deployment, operation), exc)


# --- deploy ---------------------------------------------------------------------------------


def _is_git(artifact: str) -> bool:
    return (
        "://" in artifact
        or artifact.endswith(".git")
        or artifact.startswith(("/", "git@", "file:"))
        or "#" in artifact
    )


def _source(artifact: str | None, version: str | None) -> dict[str, Any]:
    """What `artifact_path` and `version` name: a git commit (URL[#ref|sha], else the
    version as the ref or sha) or an image."""
    if artifact is None:
        return {}
    if not _is_git(artifact):
        return {"image": artifact}
    url, _, pick = artifact.partition("#")
    pick = pick or version or ""
    if re.fullmatch(r"[0-9a-fA-F]{7,40}", pick) and SHA_RE.match(pick):
        return {"repository_url": url, "commit_sha": pick}
    return {"repository_url": url, "ref": pick or None}


def deploy_request(spec: DeploySpec, original: dict[str, Any]) -> DeployRequest:
    health = HealthCheck(url=spec.health_check_url.strip()) if spec.health_check_url else None
    return DeployRequest(
        **_source(spec.artifact_path, spec.version),
        application=spec.name,
        environment=spec.environment,
        version=spec.version,
        working_directory=spec.working_directory,
        service=spec.service_name,
        strategy=STRATEGIES[spec.strategy],
        dependencies=list(spec.dependencies),
        original_request=original,
        rollout=RolloutOptions(
            rollback_on_failure=spec.rollback_on_failure,
            health_check=health,
            pre_deploy_hooks=[Hook(command) for command in spec.pre_deploy_hooks],
            post_deploy_hooks=[Hook(command) for command in spec.post_deploy_hooks],
        ),
    )


STEP_STATUS = {
    StepStatus.COMPLETED: "completed",
    StepStatus.SKIPPED: "completed",
    StepStatus.FAILED: "failed",
    StepStatus.CANCELLED: "failed",
}


def step_of(step: StepRecord) -> dict[str, Any]:
    return {
        "name": step.name,
        "status": STEP_STATUS.get(step.status, "running"),
        "message": step.message,
        "start_time": rfc3339(step.started_at),
        "end_time": rfc3339(step.finished_at),
        "error": step.error,
    }


async def wait_final(backend: LocalBackend, ref: DeploymentRef, timeout: float) -> None:
    """Until the deployment has ended (its progress feed says so), or `timeout`."""

    async def follow() -> None:
        source = await backend.follow_deployment_progress(ref)
        async for batch in source.batches():
            if any(isinstance(p, Progress) and p.final for p in batch.items):
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(follow(), timeout)


async def result_of(backend: LocalBackend, record: DeploymentRecord) -> dict[str, Any]:
    ref = DeploymentRef(None, record.id)
    steps = (await backend.steps([ref])).get(ref, [])
    success = record.state is DeploymentState.SUCCESS
    if success:
        message = f"deployed {record.application} {record.version or ''}".strip()
    elif record.state.is_final:
        message = record.error_message or f"deployment {record.state.value.lower()}"
    else:
        message = f"deployment {record.state.value.lower()}"
    return {
        "id": record.id,
        "version": record.version,
        "start_time": rfc3339(record.started_at or record.created_at),
        "end_time": rfc3339(record.finished_at),
        "duration": go_duration(seconds_between(record.started_at, record.finished_at)),
        "success": success,
        "message": message,
        "previous_version": record.previous_version,
        "steps": [step_of(s) for s in steps],
    }


def _waits(request: Request) -> bool:
    return request.query_params.get("wait", "true").lower() not in ("false", "0", "no")


@api.validate(
    json=DeploySpec,
    resp=Doc(
        HTTP_201=DeployResult,
        HTTP_400=ErrorAnswer,
        HTTP_409=ErrorAnswer,
        HTTP_500=ErrorAnswer,
    ),
    tags=[TAG],
    skip_validation=True,
)
async def deploy(request: Request) -> Response:
    """Deploy a new version of an application (answers when it has ended; `?wait=false`:
    when it is queued)."""
    try:
        data = await read_json(request)
        spec = parse(DeploySpec, data)
    except BodyError as exc:
        return failure(exc, None, "deploy")
    backend = backend_of(request)
    try:
        record = await backend.deploy(deploy_request(spec, data))
    except (DeploybotError, ValidationFailed) as exc:
        return failure(exc, spec.name, "deploy")
    ref = DeploymentRef(None, record.id)
    if _waits(request):
        await wait_final(backend, ref, backend.settings.rest_deploy_wait)
        record = await backend.deployment(ref) or record
    answer = await result_of(backend, record)
    if record.state.is_final and record.state is not DeploymentState.SUCCESS:
        code = record.error_code or ErrorCode.HEALTH_CHECK_FAILED
        response = error(500, code, answer["message"], spec.name, "deploy")
        return response
    return JSONResponse(answer, status_code=201)


# --- rollback -------------------------------------------------------------------------------


@api.validate(
    json=RollbackBody,
    resp=Doc(
        HTTP_200=RollbackResult, HTTP_400=ErrorAnswer, HTTP_404=ErrorAnswer, HTTP_500=ErrorAnswer
    ),
    tags=[TAG],
    skip_validation=True,
)
async def rollback(request: Request) -> Response:
    """Roll a deployment back to a version (its previous one without a version)."""
    name = request.path_params["name"]
    try:
        data = await read_json(request)
        body = parse(RollbackBody, data if data is not None else {})
    except BodyError as exc:
        return failure(exc, name, "rollback")
    backend = backend_of(request)
    try:
        if await backend.application(name, None) is None:
            return not_found(name, "rollback")
        record = await backend.rollback(
            RollbackRequest(application=name, version=body.version, original_request=data)
        )
    except (DeploybotError, ValidationFailed) as exc:
        if isinstance(exc, DeploybotError) and exc.code is ErrorCode.DEPLOYMENT_NOT_FOUND:
            return error(400, ErrorCode.BACKUP_NOT_FOUND, exc.message, name, "rollback")
        return failure(exc, name, "rollback")
    ref = DeploymentRef(None, record.id)
    if _waits(request):
        await wait_final(backend, ref, backend.settings.rest_deploy_wait)
        record = await backend.deployment(ref) or record
    if record.state.is_final and record.state is not DeploymentState.SUCCESS:
        cause = record.error_message or f"rollback {record.state.value.lower()}"
        return error(500, ErrorCode.ROLLBACK_FAILED, cause, name, "rollback")
    message = (
        "Rollback completed successfully"
        if record.state is DeploymentState.SUCCESS
        else f"Rollback {record.state.value.lower()}"
    )
    return JSONResponse(
        {"message": message, "version": record.version, "timestamp": rfc3339(utcnow())}
    )


# --- status, list, health -------------------------------------------------------------------


def not_found(name: str, operation: str) -> JSONResponse:
    return error(
        404, ErrorCode.DEPLOYMENT_NOT_FOUND, f"deployment {name} not found", name, operation
    )


def status_of(app: ApplicationStatus) -> dict[str, Any]:
    return {
        "name": app.name,
        "version": app.current_version,
        "environment": app.environment,
        "state": app.state.value.lower(),
        "health": app.health.value.lower(),
        "last_updated": rfc3339(app.last_updated),
        "replicas": {
            "desired": app.replicas.desired,
            "available": app.replicas.running,
            "ready": app.replicas.ready,
            "updated": app.replicas.updated,
        },
        "configuration": app.configuration,
        "events": [
            {
                "timestamp": rfc3339(e.timestamp),
                "type": e.type.value.lower(),
                "message": e.message,
                "source": e.source,
            }
            for e in app.events
        ],
    }


@api.validate(
    resp=Doc(HTTP_200=StatusAnswer, HTTP_404=ErrorAnswer), tags=[TAG], skip_validation=True
)
async def status(request: Request) -> Response:
    """A deployment's state, health, replicas, configuration and events."""
    name = request.path_params["name"]
    try:
        app = await backend_of(request).application(name, None)
    except DeploybotError as exc:
        return failure(exc, name, "status")
    if app is None:
        return not_found(name, "status")
    return JSONResponse(status_of(app))


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BodyError(f"{name} must be an integer", name) from None


@api.validate(
    query=ListQuery,
    resp=Doc(HTTP_200=ListAnswer, HTTP_400=ErrorAnswer),
    tags=[TAG],
    skip_validation=True,
)
async def list_deployments(request: Request) -> Response:
    """Deployments (applications) by name, filtered, offset-paginated."""
    query = request.query_params
    try:
        limit = _int(request, "limit", DEFAULT_LIMIT)
        offset = _int(request, "offset", 0)
        raw_state = query.get("state")
        state = ApplicationState(raw_state.upper()) if raw_state else None
    except BodyError as exc:
        return failure(exc, None, "list")
    except ValueError:
        states = ", ".join(s.value.lower() for s in ApplicationState)
        return error(
            400, ErrorCode.INVALID_DEPLOYMENT_SPEC, f"state: one of {states}", None, "list"
        )
    try:
        apps, total = await backend_of(request).application_page(
            query.get("environment"), state=state, limit=limit, offset=offset
        )
    except DeploybotError as exc:
        return failure(exc, None, "list")
    items = [
        {
            "name": a.name,
            "version": a.current_version,
            "environment": a.environment,
            "state": a.state.value.lower(),
            "health": a.health.value.lower(),
            "updated_at": rfc3339(a.last_updated),
        }
        for a in apps
    ]
    return JSONResponse({"deployments": items, "total": total, "limit": limit, "offset": offset})


@api.validate(
    resp=Doc(HTTP_200=HealthAnswer, HTTP_404=ErrorAnswer), tags=[TAG], skip_validation=True
)
async def health(request: Request) -> Response:
    """Health check of a deployment: each service and its checks."""
    name = request.path_params["name"]
    try:
        app = await backend_of(request).application(name, None)
    except DeploybotError as exc:
        return failure(exc, name, "health")
    if app is None:
        return not_found(name, "health")
    report = app.report
    components = {
        s.name: {
            "name": s.name,
            "status": s.health.value.lower(),
            "message": s.message,
            "checks": [
                {
                    "name": c.name,
                    "status": c.status.value.lower(),
                    "message": c.message,
                    "duration": go_duration(c.duration),
                    "last_run": rfc3339(c.last_run),
                }
                for c in s.checks
            ],
        }
        for s in report.components
    }
    return JSONResponse(
        {
            "overall": report.overall.value.lower(),
            "components": components,
            "last_check": rfc3339(report.last_check),
            "message": report.message,
        }
    )


# --- validate -------------------------------------------------------------------------------


def report_of(report: ValidationReport) -> dict[str, Any]:
    issues = [
        {"field": i.field, "message": i.message, "severity": i.severity.value.lower()}
        for i in report.issues
        if i.severity is Severity.ERROR
    ]
    warnings = [{"field": i.field, "message": i.message} for i in report.warnings]
    return {"valid": report.valid, "issues": issues, "warnings": warnings}


@api.validate(
    json=ValidateSpec,
    resp=Doc(HTTP_200=ValidateAnswer, HTTP_400=ValidateAnswer),
    tags=[TAG],
    skip_validation=True,
)
async def validate(request: Request) -> Response:
    """Every check of a deploy, nothing deployed: 200 when valid, else 400 with the issues."""
    try:
        data = await read_json(request)
        if not isinstance(data, dict):
            raise BodyError("the body must be a JSON object")
    except BodyError as exc:
        return JSONResponse(
            {"valid": False, "issues": [_issue(exc.field, exc.message)], "warnings": []},
            status_code=400,
        )
    spec, issues = _readable(data)
    if spec is None:
        return JSONResponse({"valid": False, "issues": issues, "warnings": []}, status_code=400)
    try:
        report = await backend_of(request).validate_deployment(deploy_request(spec, data))
    except (DeploybotError, ValidationFailed) as exc:
        errors = exc.errors if isinstance(exc, ValidationFailed) else [exc]
        issues += [_issue(e.field, e.message) for e in errors]
        return JSONResponse({"valid": False, "issues": issues, "warnings": []}, status_code=400)
    answer = report_of(report)
    answer["issues"] = issues + answer["issues"]
    valid = report.valid and not issues
    answer["valid"] = valid
    return JSONResponse(answer, status_code=200 if valid else 400)


def _issue(field: str | None, message: str) -> dict[str, Any]:
    return {"field": field, "message": message, "severity": "error"}


def _readable(data: dict[str, Any]) -> tuple[DeploySpec | None, list[dict[str, Any]]]:
    """The spec with every field that does not fit left out, and an issue for each of them
    (so the other checks still run); None when what is left is no spec (no name)."""
    try:
        return DeploySpec.model_validate(data), []
    except ValidationError as exc:
        issues = []
        wrong = set()
        for found in exc.errors():
            field = ".".join(str(part) for part in found["loc"])
            issues.append(_issue(field or None, f"{field}: {found['msg']}"))
            if found["loc"]:
                wrong.add(found["loc"][0])
        rest = {k: v for k, v in data.items() if k not in wrong}
        try:
            return DeploySpec.model_validate(rest), issues
        except ValidationError:
            return None, issues


# --- progress -------------------------------------------------------------------------------


def progress_message(progress: Progress) -> dict[str, Any]:
    return {
        "step": progress.step,
        "status": progress.status.value.lower(),
        "message": progress.message,
        "progress_pct": progress.percentage,
        "timestamp": rfc3339(progress.timestamp),
    }


async def _latest(backend: LocalBackend, name: str) -> DeploymentRecord | None:
    page = await backend.deployments(
        DeploymentFilter(applications=[name]), PageRequest(first=1), fields=None
    )
    return page.nodes[0] if page.nodes else None


async def progress(websocket: WebSocket) -> None:
    """The newest deployment of the named application: where it is now, then each change;
    closed (1000) when it has ended. An unknown name gets the seed's error and 4404."""
    name = websocket.path_params["name"]
    try:
        backend = backend_of(websocket)
    except NotAuthenticated:
        await websocket.close(4403, "a valid API token is required")
        return
    await websocket.accept()
    try:
        latest = await _latest(backend, name)
        if latest is None:
            body = error(
                404,
                ErrorCode.DEPLOYMENT_NOT_FOUND,
                f"deployment {name} not found",
                name,
                "progress",
            ).body
            await websocket.send_text(bytes(body).decode())
            await websocket.close(4404, "deployment not found")
            return
        source = await backend.follow_deployment_progress(DeploymentRef(None, latest.id))
        async for batch in source.batches():
            for item in batch.items:
                await websocket.send_json(progress_message(item))
            if any(item.final for item in batch.items):
                break
        await websocket.close(1000)
    except WebSocketDisconnect:
        return


routes = [
    Route(BASE, deploy, methods=["POST"]),
    Route(BASE, list_deployments, methods=["GET"]),
    Route(f"{BASE}/validate", validate, methods=["POST"]),
    Route(BASE + "/{name}", status, methods=["GET"]),
    Route(BASE + "/{name}/rollback", rollback, methods=["POST"]),
    Route(BASE + "/{name}/health", health, methods=["GET"]),
]
websocket_routes = [WebSocketRoute(BASE + "/{name}/progress", progress)]
