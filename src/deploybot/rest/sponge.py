"""Sponge (seed 004): record releases from any tooling with a forgiving body, add packages
to a release afterwards, attach results, and read them back: a release, its hosts, past
and ongoing releases, the current version of a package.

A Sponge release is a recorded deployment (trigger EXTERNAL); its packages are the
deployment's services. Nothing in a body is required ("do the right thing" with missing
data): a release without an application or a version has none and answers `null` for
it, without times it finished when it was recorded, with a start and no end it is
ongoing. Unknown keys are kept in the deployment's original request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from spectree import Response as Doc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deploybot.backend.protocol import Backend
from deploybot.domain import ACTIVE_STATES, DeploymentState, DeploymentTrigger
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.filters import DeploymentFilter
from deploybot.inputs import DeploymentRef, PageRequest, RecordedService, RecordRequest
from deploybot.records import DeploymentRecord, ServiceRolloutRecord
from deploybot.rest.common import (
    BodyError,
    backend_of,
    parse,
    read_json,
    rfc3339,
    waited,
)
from deploybot.rest.openapi import api
from deploybot.times import seconds_between

TAG = "Sponge"
MAX_RELEASES = 100
MAX_SCANNED = 1000
"""Recordings `GET /releases?platform=` looks through at most (platforms are not indexed)."""

#: Sponge's forgiving `status` words.
STATES = {
    "ongoing": DeploymentState.IN_PROGRESS,
    "in_progress": DeploymentState.IN_PROGRESS,
    "started": DeploymentState.IN_PROGRESS,
    "running": DeploymentState.IN_PROGRESS,
    "queued": DeploymentState.QUEUED,
    "complete": DeploymentState.SUCCESS,
    "completed": DeploymentState.SUCCESS,
    "success": DeploymentState.SUCCESS,
    "succeeded": DeploymentState.SUCCESS,
    "failed": DeploymentState.FAILURE,
    "failure": DeploymentState.FAILURE,
    "error": DeploymentState.ERROR,
    "cancelled": DeploymentState.CANCELLED,
    "rolled_back": DeploymentState.ROLLED_BACK,
}


class Package(BaseModel):
    """A package released (a service): its version, hosts and how long it took."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str | None = None
    image: str | None = None
    hosts: list[str] = Field(default_factory=list)
    started: str | None = Field(default=None, description="RFC 3339; no offset: UTC.")
    finished: str | None = None
    duration: float | None = Field(default=None, description="Seconds.")


class ReleaseBody(BaseModel):
    """Every field is optional."""

    model_config = ConfigDict(extra="allow")

    application: str | None = None
    version: str | None = None
    notes: str | None = None
    references: list[str] = Field(default_factory=list, description="Tickets.")
    platforms: list[str] = Field(default_factory=list)
    user: str | None = Field(default=None, description="Who performed the release.")
    team: str | None = Field(default=None, description="The dev team responsible.")
    status: str | None = Field(default=None, description="ongoing, complete, failed, ...")
    started: str | None = None
    finished: str | None = None
    duration: float | None = Field(default=None, description="Seconds, overall.")
    hosts: list[str] = Field(default_factory=list)
    packages: list[Package] = Field(default_factory=list)
    logs: Any = Field(default=None, description="Kept as a result of the release.")


class PackagesBody(BaseModel):
    packages: list[Package]


class ResultsBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    release: int = Field(description="The release's id.")
    results: Any = None


class PackageAnswer(BaseModel):
    name: str
    version: str | None
    hosts: list[str]
    started: str | None
    finished: str | None
    duration: float | None


class ReleaseAnswer(BaseModel):
    id: int
    application: str | None
    version: str | None
    status: Literal["ongoing", "complete", "failed"]
    state: str
    notes: str | None
    references: list[str]
    platforms: list[str]
    user: str | None
    team: str | None
    started: str | None
    finished: str | None
    duration: float | None
    hosts: list[str]
    packages: list[PackageAnswer]


class ReleasesAnswer(BaseModel):
    releases: list[ReleaseAnswer]


class HostsAnswer(BaseModel):
    id: int
    hosts: list[str]


class PackageVersionAnswer(BaseModel):
    package: str
    version: str | None
    application: str | None
    release: int
    released: str | None


class SpongeError(BaseModel):
    message: str
    code: str
    field: str | None = None


def error(status: int, message: str, code: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"message": message, "code": code, "field": field}, status_code=status)


def failure(exc: DeploybotError | ValidationFailed | BodyError) -> JSONResponse:
    if isinstance(exc, BodyError):
        return error(400, exc.message, ErrorCode.INVALID_INPUT, exc.field)
    if isinstance(exc, ValidationFailed):
        first = exc.errors[0]
        return error(400, str(exc), first.code, first.field)
    status = {
        ErrorCode.DEPLOYMENT_NOT_FOUND: 404,
        ErrorCode.FORBIDDEN: 403,
        ErrorCode.RATE_LIMITED: 429,
        ErrorCode.DEPLOYMENT_IN_PROGRESS: 409,
        ErrorCode.NOT_EXTERNAL: 409,
    }.get(exc.code, 400)
    return waited(error(status, exc.message, exc.code, exc.field), exc)


def _service(package: Package) -> RecordedService:
    return RecordedService(
        name=package.name,
        version=package.version,
        image=package.image,
        hosts=list(package.hosts),
        started_at=package.started,
        finished_at=package.finished,
        duration=package.duration,
    )


def _state(body: ReleaseBody) -> DeploymentState | BodyError:
    if body.status is not None:
        found = STATES.get(body.status.strip().lower())
        if found is None:
            return BodyError(f"status: one of {', '.join(STATES)}", "status")
        return found
    if body.started and not body.finished and body.duration is None:
        return DeploymentState.IN_PROGRESS  # it started and has not ended: ongoing
    return DeploymentState.SUCCESS


def record_request(body: ReleaseBody, original: dict[str, Any]) -> RecordRequest | BodyError:
    state = _state(body)
    if isinstance(state, BodyError):
        return state
    return RecordRequest(
        application=(body.application or "").strip() or None,  # blank: none, as missing
        version=body.version,
        state=state,
        actor=body.user,
        team=body.team,
        notes=body.notes,
        references=list(body.references),
        hosts=list(body.hosts),
        platforms=list(body.platforms),
        services=[_service(p) for p in body.packages],
        started_at=body.started,
        finished_at=body.finished,
        duration=body.duration,
        provider="sponge",
        original_request=original,
    )


def _status(state: DeploymentState) -> str:
    if state in ACTIVE_STATES:
        return "ongoing"
    if state in (DeploymentState.SUCCESS, DeploymentState.INACTIVE):
        return "complete"
    return "failed"


def package_of(service: ServiceRolloutRecord) -> dict[str, Any]:
    return {
        "name": service.service,
        "version": service.version,
        "hosts": list(service.nodes),
        "started": rfc3339(service.started_at),
        "finished": rfc3339(service.finished_at),
        "duration": seconds_between(service.started_at, service.finished_at)
        if service.finished_at
        else None,
    }


def release_of(record: DeploymentRecord, services: list[ServiceRolloutRecord]) -> dict[str, Any]:
    nodes = [n for s in services for n in s.nodes]
    return {
        "id": record.id,
        "application": record.application,
        "version": record.version,
        "status": _status(record.state),
        "state": record.state.value,
        "notes": record.description,
        "references": record.references,
        "platforms": record.platforms,
        "user": record.actor,
        "team": record.team,
        "started": rfc3339(record.started_at),
        "finished": rfc3339(record.finished_at),
        "duration": seconds_between(record.started_at, record.finished_at)
        if record.finished_at
        else None,
        "hosts": list(dict.fromkeys([*record.hosts, *nodes])),
        "packages": [package_of(s) for s in services],
    }


def _id(request: Request) -> int | None:
    raw = request.path_params["release_id"]
    return int(raw) if raw.isdigit() else None


def not_found(raw: object) -> JSONResponse:
    return error(404, f"release {raw} not found", ErrorCode.DEPLOYMENT_NOT_FOUND, "id")


@api.validate(
    json=ReleaseBody,
    resp=Doc(HTTP_201=ReleaseAnswer, HTTP_400=SpongeError),
    tags=[TAG],
    skip_validation=True,
)
async def create_release(request: Request) -> Response:
    """Record a release; nothing in the body is required."""
    try:
        data = await read_json(request)
        body = parse(ReleaseBody, data if data is not None else {})
    except BodyError as exc:
        return failure(exc)
    wanted = record_request(body, data or {})
    if isinstance(wanted, BodyError):
        return failure(wanted)
    backend = backend_of(request)
    try:
        record = await backend.record_deployment(wanted)
        ref = DeploymentRef(None, record.id)
        if body.logs not in (None, "", [], {}):
            await backend.add_deployment_result(ref, {"logs": body.logs})
        services = (await backend.service_rollouts([ref])).get(ref, [])
    except (DeploybotError, ValidationFailed) as exc:
        return failure(exc)
    return JSONResponse(release_of(record, services), status_code=201)


@api.validate(
    json=PackagesBody,
    resp=Doc(HTTP_201=ReleaseAnswer, HTTP_400=SpongeError, HTTP_404=SpongeError),
    tags=[TAG],
    skip_validation=True,
)
async def add_packages(request: Request) -> Response:
    """Add packages (versions, hosts, durations) to a recorded release. The body is
    `{"packages": [...]}`, a list of packages, or one package."""
    number = _id(request)
    if number is None:
        return not_found(request.path_params["release_id"])
    try:
        data = await read_json(request)
        if isinstance(data, list):
            data = {"packages": data}
        elif isinstance(data, dict) and "packages" not in data:
            data = {"packages": [data]}
        body = parse(PackagesBody, data)
    except BodyError as exc:
        return failure(exc)
    backend = backend_of(request)
    ref = DeploymentRef(None, number)
    try:
        services = await backend.add_recorded_services(ref, [_service(p) for p in body.packages])
        record = await backend.deployment(ref)
    except (DeploybotError, ValidationFailed) as exc:
        return failure(exc)
    if record is None:
        return not_found(number)
    return JSONResponse(release_of(record, services), status_code=201)


@api.validate(
    json=ResultsBody,
    resp=Doc(HTTP_201=ReleaseAnswer, HTTP_400=SpongeError, HTTP_404=SpongeError),
    tags=[TAG],
    skip_validation=True,
)
async def add_results(request: Request) -> Response:
    """Attach results (any JSON) to a release: `{"release": id, "results": ...}`; other keys
    are kept with them."""
    try:
        body = parse(ResultsBody, await read_json(request))
    except BodyError as exc:
        return failure(exc)
    extra = dict(body.model_extra or {})
    data = body.results if not extra else {"results": body.results, **extra}
    backend = backend_of(request)
    ref = DeploymentRef(None, body.release)
    try:
        record, _ = await backend.add_deployment_result(ref, data)
        services = (await backend.service_rollouts([ref])).get(ref, [])
    except DeploybotError as exc:
        return failure(exc)
    return JSONResponse(release_of(record, services), status_code=201)


async def _release(request: Request) -> tuple[DeploymentRecord, list[ServiceRolloutRecord]] | None:
    number = _id(request)
    if number is None:
        return None
    backend = backend_of(request)
    ref = DeploymentRef(None, number)
    record = await backend.deployment(ref)
    if record is None:
        return None
    return record, (await backend.service_rollouts([ref])).get(ref, [])


@api.validate(
    resp=Doc(HTTP_200=ReleaseAnswer, HTTP_404=SpongeError), tags=[TAG], skip_validation=True
)
async def get_release(request: Request) -> Response:
    """One release with its packages and hosts."""
    found = await _release(request)
    if found is None:
        return not_found(request.path_params["release_id"])
    return JSONResponse(release_of(*found))


@api.validate(
    resp=Doc(HTTP_200=HostsAnswer, HTTP_404=SpongeError), tags=[TAG], skip_validation=True
)
async def release_hosts(request: Request) -> Response:
    """The hosts a release went to (its own and its packages')."""
    found = await _release(request)
    if found is None:
        return not_found(request.path_params["release_id"])
    view = release_of(*found)
    return JSONResponse({"id": view["id"], "hosts": view["hosts"]})


class ReleasesQuery(BaseModel):
    status: Literal["ongoing", "past"] | None = None
    application: str | None = None
    platform: str | None = None
    limit: int = 20


@api.validate(
    query=ReleasesQuery,
    resp=Doc(HTTP_200=ReleasesAnswer, HTTP_400=SpongeError),
    tags=[TAG],
    skip_validation=True,
)
async def list_releases(request: Request) -> Response:
    """Releases, newest first: `?status=ongoing` or `past`, `?application=`, `?platform=`,
    `?limit=` (1-100)."""
    query = request.query_params
    status = query.get("status")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        return error(400, "limit must be an integer", ErrorCode.INVALID_INPUT, "limit")
    if not 1 <= limit <= MAX_RELEASES:
        return error(400, f"limit must be 1..{MAX_RELEASES}", ErrorCode.INVALID_INPUT, "limit")
    if status not in (None, "ongoing", "past"):
        return error(400, "status must be ongoing or past", ErrorCode.INVALID_INPUT, "status")
    states = None
    if status == "ongoing":
        states = list(ACTIVE_STATES)
    elif status == "past":
        states = [s for s in DeploymentState if s.is_final]
    application = query.get("application")
    platform = query.get("platform")
    backend = backend_of(request)
    flt = DeploymentFilter(
        applications=[application] if application else None,
        states=states,
        triggers=[DeploymentTrigger.EXTERNAL],
    )
    try:
        records = await _recorded(backend, flt, platform, limit)
    except DeploybotError as exc:
        return failure(exc)
    refs = [DeploymentRef(None, r.id) for r in records]
    services = await backend.service_rollouts(refs)
    return JSONResponse(
        {
            "releases": [
                release_of(r, services.get(ref, [])) for r, ref in zip(records, refs, strict=True)
            ]
        }
    )


async def _recorded(
    backend: Backend, flt: DeploymentFilter, platform: str | None, limit: int
) -> list[DeploymentRecord]:
    """Newest first, up to `limit` of them on `platform` (if given), reading at most
    `MAX_SCANNED` recordings."""
    found: list[DeploymentRecord] = []
    after = None
    for _ in range(MAX_SCANNED // MAX_RELEASES):
        page = await backend.deployments(flt, PageRequest(first=MAX_RELEASES, after=after))
        found += [r for r in page.nodes if platform is None or platform in r.platforms]
        if len(found) >= limit or not page.has_next or not page.edges:
            break
        after = page.edges[-1].cursor
    return found[:limit]


@api.validate(
    resp=Doc(HTTP_200=PackageVersionAnswer, HTTP_404=SpongeError), tags=[TAG], skip_validation=True
)
async def package_version(request: Request) -> Response:
    """The version of a package deployed now: the newest successful release (or deploybot
    deployment) that carried it (`?application=` to pick among applications)."""
    name = request.path_params["name"]
    application = request.query_params.get("application")
    backend = backend_of(request)
    flt = DeploymentFilter(
        applications=[application] if application else None, states=[DeploymentState.SUCCESS]
    )
    page = await backend.deployments(flt, PageRequest(first=MAX_RELEASES), fields=None)
    refs = [DeploymentRef(None, r.id) for r in page.nodes]
    services = await backend.service_rollouts(refs)
    for record, ref in zip(page.nodes, refs, strict=True):
        for service in services.get(ref, []):
            if service.service == name:
                released: datetime | None = service.finished_at or record.finished_at
                return JSONResponse(
                    {
                        "package": name,
                        "version": service.version,
                        "application": record.application,
                        "release": record.id,
                        "released": rfc3339(released),
                    }
                )
    return error(
        404, f"package {name} has no current version", ErrorCode.DEPLOYMENT_NOT_FOUND, "name"
    )


routes = [
    Route("/release", create_release, methods=["POST"]),
    Route("/release/{release_id}", get_release, methods=["GET"]),
    Route("/release/{release_id}/packages", add_packages, methods=["POST"]),
    Route("/relase/{release_id}/packages", add_packages, methods=["POST"]),
    Route("/release/{release_id}/hosts", release_hosts, methods=["GET"]),
    Route("/releases", list_releases, methods=["GET"]),
    Route("/results", add_results, methods=["POST"]),
    Route("/package/{name}/version", package_version, methods=["GET"]),
]
