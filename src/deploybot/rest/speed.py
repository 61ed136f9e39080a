"""SPEED (seed 001): `POST /start` by repository URL and branch, `GET /info/<id>` with
SPEED's Pending/Running/Succeeded/Failed, `POST /update` and `POST /add_results/<id>` from
the runner, `GET /results/<id>`. Errors are SPEED's `{"error": "..."}`.

`/start` deploys with deploybot's runner, or (`DEPLOYBOT_SPEED_RUNNER=external`, or
`?runner=external`) records a QUEUED deployment that SPEED's own runner then drives
through `/update` (a status word moves it on; anything else is added as a result).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field
from spectree import Response as Doc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deploybot.core.requests import application_name_from
from deploybot.domain import DeploymentState
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.inputs import DeploymentRef, DeployRequest, RecordRequest
from deploybot.records import DeploymentRecord
from deploybot.rest.common import BodyError, backend_of, read_body, waited
from deploybot.rest.openapi import api

TAG = "SPEED"

SpeedStatus = Literal["Pending", "Running", "Succeeded", "Failed"]

STATUS: dict[DeploymentState, SpeedStatus] = {
    DeploymentState.QUEUED: "Pending",
    DeploymentState.IN_PROGRESS: "Running",
    DeploymentState.SUCCESS: "Succeeded",
    DeploymentState.INACTIVE: "Succeeded",
    DeploymentState.FAILURE: "Failed",
    DeploymentState.ERROR: "Failed",
    DeploymentState.ROLLED_BACK: "Failed",
    DeploymentState.CANCELLED: "Failed",
}

#: Words of `/update`'s new_results that are a status (case-insensitive).
REPORTED: dict[str, DeploymentState] = {
    "running": DeploymentState.IN_PROGRESS,
    "succeeded": DeploymentState.SUCCESS,
    "success": DeploymentState.SUCCESS,
    "failed": DeploymentState.FAILURE,
    "failure": DeploymentState.FAILURE,
    "error": DeploymentState.ERROR,
    "cancelled": DeploymentState.CANCELLED,
}

NOT_FOUND = "Deployment not found"


class StartBody(BaseModel):
    url: str = Field(description="The URL of the Git repository to deploy.")
    branch: str = Field(description="The branch of the Git repository to deploy.")


class StartAnswer(BaseModel):
    id: int = Field(description="The unique ID of the newly created deployment.")


class InfoAnswer(BaseModel):
    id: int
    repo_name: str | None = Field(description="The repository URL.")
    repo_branch: str | None
    status: SpeedStatus


class UpdateBody(BaseModel):
    id: int
    new_results: str = Field(
        description="A status (Running, Succeeded, Failed) moves the deployment on; anything"
        " else is added to its results."
    )


class AddResultsBody(BaseModel):
    results: Any = Field(default=None, description="Logs, output or any data of the outcome.")


class MessageAnswer(BaseModel):
    message: str


class ResultsAnswer(BaseModel):
    results: str = Field(description="Every result, oldest first, one a line.")


class SpeedError(BaseModel):
    error: str


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def failure(exc: DeploybotError | ValidationFailed) -> JSONResponse:
    """A backend failure in SPEED's shape."""
    if isinstance(exc, ValidationFailed):
        return error(str(exc), 400)
    if exc.code is ErrorCode.DEPLOYMENT_NOT_FOUND:
        return error(NOT_FOUND, 404)
    status = {
        ErrorCode.FORBIDDEN: 403,
        ErrorCode.RATE_LIMITED: 429,
        ErrorCode.DEPLOYMENT_IN_PROGRESS: 409,
        ErrorCode.INVALID_STATE_TRANSITION: 409,
        ErrorCode.NOT_EXTERNAL: 409,
    }.get(exc.code, 400)
    return waited(error(exc.message, status), exc)


def _number(raw: str) -> int | None:
    return int(raw) if raw.isdigit() else None


@api.validate(
    json=StartBody,
    resp=Doc(HTTP_201=StartAnswer, HTTP_400=SpeedError),
    tags=[TAG],
    skip_validation=True,
)
async def start(request: Request) -> Response:
    """Start a deployment of a repository's branch."""
    try:
        body = await read_body(request, StartBody)
    except BodyError as exc:
        return error(exc.message, 400)
    backend = backend_of(request)
    runner = request.query_params.get("runner", backend.settings.speed_runner)
    original = {"url": body.url, "branch": body.branch}
    try:
        if runner == "external":
            record = await backend.record_deployment(
                RecordRequest(
                    application=application_name_from(body.url, None),
                    state=DeploymentState.QUEUED,
                    repository_url=body.url,
                    ref=body.branch,
                    provider="speed",
                    original_request=original,
                )
            )
        elif runner == "deploybot":
            record = await backend.deploy(
                DeployRequest(repository_url=body.url, ref=body.branch, original_request=original)
            )
        else:
            return error("runner must be deploybot or external", 400)
    except (DeploybotError, ValidationFailed) as exc:
        return failure(exc)
    return JSONResponse({"id": record.id}, status_code=201)


def info_of(record: DeploymentRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "repo_name": record.repository_url,
        "repo_branch": record.ref,
        "status": STATUS[record.state],
    }


@api.validate(resp=Doc(HTTP_200=InfoAnswer, HTTP_404=SpeedError), tags=[TAG], skip_validation=True)
async def info(request: Request) -> Response:
    """A deployment's repository, branch and status."""
    number = _number(request.path_params["deployment_id"])
    record = (
        None
        if number is None
        else await backend_of(request).deployment(DeploymentRef(None, number))
    )
    if record is None:
        return error(NOT_FOUND, 404)
    return JSONResponse(info_of(record))


@api.validate(
    json=UpdateBody,
    resp=Doc(HTTP_200=MessageAnswer, HTTP_400=SpeedError, HTTP_404=SpeedError, HTTP_409=SpeedError),
    tags=[TAG],
    skip_validation=True,
)
async def update(request: Request) -> Response:
    """The runner reports its deployment's status (or new results)."""
    try:
        body = await read_body(request, UpdateBody)
    except BodyError as exc:
        return error(exc.message, 400)
    backend = backend_of(request)
    ref = DeploymentRef(None, body.id)
    state = REPORTED.get(body.new_results.strip().lower())
    try:
        if state is not None:
            await backend.report_deployment_status(ref, state, None)
        else:
            await backend.add_deployment_result(ref, body.new_results)
    except (DeploybotError, ValidationFailed) as exc:
        return failure(exc)
    return JSONResponse({"message": "Deployment updated successfully"})


@api.validate(
    json=AddResultsBody,
    resp=Doc(HTTP_200=MessageAnswer, HTTP_400=SpeedError, HTTP_404=SpeedError),
    tags=[TAG],
    skip_validation=True,
)
async def add_results(request: Request) -> Response:
    """Add results (logs, output) to a deployment."""
    number = _number(request.path_params["deployment_id"])
    if number is None:
        return error(NOT_FOUND, 404)
    try:
        body = await read_body(request, AddResultsBody)
    except BodyError:
        return error("Missing results data", 400)
    try:
        await backend_of(request).add_deployment_result(DeploymentRef(None, number), body.results)
    except DeploybotError as exc:
        if exc.code is ErrorCode.INVALID_INPUT:
            return error("Missing results data", 400)
        return failure(exc)
    return JSONResponse({"message": "Results added successfully"})


def _text(data: Any) -> str:
    return data if isinstance(data, str) else orjson.dumps(data).decode()


@api.validate(
    resp=Doc(HTTP_200=ResultsAnswer, HTTP_404=SpeedError), tags=[TAG], skip_validation=True
)
async def results(request: Request) -> Response:
    """Every result of a deployment."""
    number = _number(request.path_params["deployment_id"])
    if number is None:
        return error(NOT_FOUND, 404)
    ref = DeploymentRef(None, number)
    backend = backend_of(request)
    if await backend.deployment(ref) is None:
        return error(NOT_FOUND, 404)
    found = (await backend.results([ref])).get(ref, [])
    return JSONResponse({"results": "\n".join(_text(r.data) for r in found)})


routes = [
    Route("/start", start, methods=["POST"]),
    Route("/info/{deployment_id}", info, methods=["GET"]),
    Route("/update", update, methods=["POST"]),
    Route("/add_results/{deployment_id}", add_results, methods=["POST"]),
    Route("/results/{deployment_id}", results, methods=["GET"]),
]
