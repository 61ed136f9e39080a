"""Deis Workflow Manager's versions API (seed 003): publish a `ComponentVersion` at
`POST /{apiVersion}/versions/{train}/{component}/{version}`, and its reads: a component's
versions on a train, the latest one, and one version.

The URL's three segments must agree with the body (else 400 naming the segment), as the
seed asks; `version.data` may be `{}`. Errors are plain text, as workflow-manager-api's
`http.Error` writes them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, RootModel
from spectree import Response as Doc
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.filters import ReleaseFilter
from deploybot.inputs import PublishRequest
from deploybot.records import ReleaseRecord
from deploybot.rest.common import BodyError, backend_of, parse, read_json, waited
from deploybot.rest.common import rfc3339 as time_text
from deploybot.rest.openapi import api

TAG = "Deis Workflow Manager"
API_VERSIONS = ("v2",)
MAX_VERSIONS = 1000
"""Versions a component's list answers at most (newest first)."""
MAX_LATEST = 100
"""Components one `POST /versions/latest` may ask about."""

_ZONE_AFTER_Z = re.compile(r"^(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d+)?)[zZ][+-]?\d\d:?\d\d$")


class ComponentModel(BaseModel):
    name: str
    description: str | None = None


class VersionModel(BaseModel):
    train: str
    version: str
    released: str = Field(
        description="RFC 3339; without an offset it is UTC. The seed's `...Z07:00` is read as UTC."
    )
    data: dict[str, Any] = Field(default_factory=dict)


class ComponentVersion(BaseModel):
    component: ComponentModel
    version: VersionModel


class ComponentVersions(RootModel[list[ComponentVersion]]):
    """A component's versions on a train, newest first."""


class DeisError(RootModel[str]):
    """A plain-text message (`text/plain`), as Go's `http.Error` writes it."""


def text(message: str, status: int) -> PlainTextResponse:
    return PlainTextResponse(message + "\n", status_code=status)


def released_text(value: str) -> str:
    """The seed's example writes a zone after `Z` (`2016-04-16T23:54:39Z07:00`), which the
    seed says is ignored: such a time is read as UTC."""
    found = _ZONE_AFTER_Z.match(value.strip())
    return found.group(1) + "Z" if found else value


def component_version(record: ReleaseRecord) -> dict[str, Any]:
    return {
        "component": {"name": record.component},
        "version": {
            "train": record.train,
            "version": record.version,
            "released": time_text(record.released_at),
            "data": record.data,
        },
    }


def failure(exc: DeploybotError | ValidationFailed) -> PlainTextResponse:
    if isinstance(exc, ValidationFailed):
        return text(str(exc), 400)
    status = {
        ErrorCode.RELEASE_EXISTS: 409,
        ErrorCode.FORBIDDEN: 403,
        ErrorCode.RATE_LIMITED: 429,
    }.get(exc.code, 400)
    return waited(text(exc.message, status), exc)


def _mismatches(body: ComponentVersion, train: str, component: str, version: str) -> list[str]:
    found = []
    if body.version.train != train:
        found.append(
            f"URL segment train {train!r} does not match version.train {body.version.train!r}"
        )
    if body.component.name != component:
        found.append(
            f"URL segment component {component!r} does not match component.name"
            f" {body.component.name!r}"
        )
    if body.version.version != version:
        found.append(
            f"URL segment version {version!r} does not match version.version"
            f" {body.version.version!r}"
        )
    return found


def _api_version(request: Request) -> Response | None:
    found = request.path_params["api_version"]
    if found not in API_VERSIONS:
        return text(f"unknown API version {found!r} (known: {', '.join(API_VERSIONS)})", 404)
    return None


@api.validate(
    json=ComponentVersion,
    resp=Doc(HTTP_200=ComponentVersion, HTTP_400=DeisError, HTTP_409=DeisError),
    tags=[TAG],
    skip_validation=True,
)
async def publish(request: Request) -> Response:
    """Publish a component's version on a release train (400 on a body that disagrees with
    the URL; 409 when it is already published)."""
    wrong = _api_version(request)
    if wrong is not None:
        return wrong
    params = request.path_params
    try:
        body = parse(ComponentVersion, await read_json(request))
    except BodyError as exc:
        return text(exc.message, 400)
    mismatches = _mismatches(body, params["train"], params["component"], params["version"])
    if mismatches:
        return text("; ".join(mismatches), 400)
    try:
        record = await backend_of(request).publish_release(
            PublishRequest(
                component=body.component.name,
                train=body.version.train,
                version=body.version.version,
                released_at=released_text(body.version.released),
                data=body.version.data,
            )
        )
    except (DeploybotError, ValidationFailed) as exc:
        return failure(exc)
    return JSONResponse(component_version(record))


async def _versions(request: Request) -> list[ReleaseRecord]:
    params = request.path_params
    backend = backend_of(request)
    page = await backend.releases(
        ReleaseFilter(components=[params["component"]], trains=[params["train"]]),
        first=100,
        after=None,
        by_release_time=True,
        descending=True,
    )
    found = page.nodes
    while page.has_next and len(found) < MAX_VERSIONS and page.edges:
        page = await backend.releases(
            ReleaseFilter(components=[params["component"]], trains=[params["train"]]),
            first=100,
            after=page.edges[-1].cursor,
            by_release_time=True,
            descending=True,
        )
        found += page.nodes
    return found[:MAX_VERSIONS]


@api.validate(resp=Doc(HTTP_200=ComponentVersions), tags=[TAG], skip_validation=True)
async def component_versions(request: Request) -> Response:
    """A component's versions on a train, newest release first."""
    wrong = _api_version(request)
    if wrong is not None:
        return wrong
    try:
        found = await _versions(request)
    except DeploybotError as exc:
        return failure(exc)
    return JSONResponse([component_version(r) for r in found])


@api.validate(
    resp=Doc(HTTP_200=ComponentVersion, HTTP_404=DeisError), tags=[TAG], skip_validation=True
)
async def latest(request: Request) -> Response:
    """The latest version (by release time) of a component on a train; 404 when none."""
    wrong = _api_version(request)
    if wrong is not None:
        return wrong
    params = request.path_params
    try:
        record = await backend_of(request).latest_release(
            params["component"], params["train"], by_semver=False
        )
    except DeploybotError as exc:
        return failure(exc)
    if record is None:
        return text("404 page not found", 404)
    return JSONResponse(component_version(record))


@api.validate(
    resp=Doc(HTTP_200=ComponentVersion, HTTP_404=DeisError), tags=[TAG], skip_validation=True
)
async def one_version(request: Request) -> Response:
    """One version of a component on a train; 404 when it was not published."""
    wrong = _api_version(request)
    if wrong is not None:
        return wrong
    try:
        found = await _versions(request)
    except DeploybotError as exc:
        return failure(exc)
    wanted = request.path_params["version"]
    for record in found:
        if record.version == wanted:
            return JSONResponse(component_version(record))
    return text("404 page not found", 404)


class SparseComponent(BaseModel):
    name: str


class SparseVersion(BaseModel):
    train: str


class ComponentAndTrain(BaseModel):
    component: SparseComponent
    version: SparseVersion


class LatestQuery(BaseModel):
    data: list[ComponentAndTrain] = Field(max_length=MAX_LATEST)


class LatestAnswer(BaseModel):
    data: list[ComponentVersion]


@api.validate(
    json=LatestQuery,
    resp=Doc(HTTP_200=LatestAnswer, HTTP_400=DeisError),
    tags=[TAG],
    skip_validation=True,
)
async def latest_of_many(request: Request) -> Response:
    """The latest version of each component on its train (`{"data": [{"component":
    {"name"}, "version": {"train"}}]}`); those with none are left out."""
    wrong = _api_version(request)
    if wrong is not None:
        return wrong
    try:
        query = parse(LatestQuery, await read_json(request))
    except BodyError as exc:
        return text(f"error decoding request body ({exc.message})", 400)
    backend = backend_of(request)
    found = []
    try:
        for wanted in query.data:
            record = await backend.latest_release(
                wanted.component.name, wanted.version.train, by_semver=False
            )
            if record is not None:
                found.append(component_version(record))
    except DeploybotError as exc:
        return failure(exc)
    return JSONResponse({"data": found})


PREFIX = "/{api_version}/versions/{train}/{component}"

routes = [
    Route("/{api_version}/versions/latest", latest_of_many, methods=["POST"]),
    Route(PREFIX, component_versions, methods=["GET"]),
    Route(PREFIX + "/latest", latest, methods=["GET"]),
    Route(PREFIX + "/{version}", publish, methods=["POST"]),
    Route(PREFIX + "/{version}", one_version, methods=["GET"]),
]
