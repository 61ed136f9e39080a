"""The release catalogue (seed 003, Deis' component versions): publishing, querying, and the
releases deployments publish themselves.

A release is unique per (component, train, version). Release times are stored
in UTC; a time written without an offset is taken as UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from deploybot.config import Settings
from deploybot.core import semver
from deploybot.core.history import get_deployment, page_bounds
from deploybot.db.engine import Database
from deploybot.db.models import Release, deployment_table, release_table
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.filters import ReleaseFilter, sql_filter
from deploybot.ids import InvalidId, decode_keyset, encode_keyset
from deploybot.inputs import PublishRequest
from deploybot.records import Edge, Page, ReleaseRecord
from deploybot.times import parse_rfc3339, utcnow

_COMPONENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_TRAIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
_VERSION_RE = re.compile(r"^\S{1,255}$")


def _record(row: Mapping[Any, Any], environment: str) -> ReleaseRecord:
    data = row["data"]
    return ReleaseRecord(
        id=int(row["id"]),
        environment=environment,
        component=row["component"],
        train=row["train"],
        version=row["version"],
        released_at=row["released_at"],
        data=data if data is not None else {},
        deployment_id=row["deployment_id"],
        created_at=row["created_at"],
    )


def _validated(request: PublishRequest) -> tuple[datetime, dict[str, Any]]:
    errors: list[DeploybotError] = []

    def fail(field: str, message: str) -> None:
        errors.append(DeploybotError(ErrorCode.INVALID_INPUT, message, field=field))

    if not _COMPONENT_RE.match(request.component):
        fail(
            "component",
            "component must be 1-200 letters, digits, '.', '_' or '-', starting with a letter"
            " or digit",
        )
    if not _TRAIN_RE.match(request.train):
        fail("train", "train must be 1-100 letters, digits, '.', '_', '/' or '-'")
    if not _VERSION_RE.match(request.version):
        fail("version", "version must be 1-255 characters without spaces")
    released_at = utcnow()
    if isinstance(request.released_at, datetime):
        released_at = request.released_at
    else:
        try:
            released_at = parse_rfc3339(request.released_at)
        except ValueError:
            fail(
                "releasedAt",
                f"{request.released_at!r} is not an RFC 3339 time: write e.g."
                " 2016-04-16T23:54:39Z, 2016-04-16T23:54:39+07:00, or 2016-04-16T23:54:39 (UTC)",
            )
    data = {} if request.data is None else request.data
    if not isinstance(data, dict):
        fail("data", "data must be a JSON object (it may be {})")
    if errors:
        raise ValidationFailed(errors)
    return released_at, data


async def publish_release(
    db: Database,
    request: PublishRequest,
    *,
    environment: str,
    deployment_id: int | None = None,
) -> ReleaseRecord:
    """Record a new release; the same component, train and version again is RELEASE_EXISTS."""
    released_at, data = _validated(request)
    existing = await find_release(
        db, request.component, request.train, request.version, environment=environment
    )
    if existing is not None:
        raise _exists(request)
    try:
        async with db.transaction() as session:
            release = Release(
                component=request.component,
                train=request.train,
                version=request.version,
                released_at=released_at,
                data=data,
                deployment_id=deployment_id,
            )
            session.add(release)
            await session.flush()
            release_id = release.id
    except IntegrityError as exc:  # published meanwhile by someone else
        raise _exists(request) from exc
    assert release_id is not None
    record = await get_release(db, release_id, environment=environment)
    assert record is not None
    return record


def _exists(request: PublishRequest) -> DeploybotError:
    return DeploybotError(
        ErrorCode.RELEASE_EXISTS,
        f"{request.component} {request.version} is already published on train {request.train}",
        field="version",
    )


async def find_release(
    db: Database, component: str, train: str, version: str, *, environment: str
) -> ReleaseRecord | None:
    c = release_table.c
    async with db.connection() as connection:
        result = await connection.execute(
            select(release_table).where(
                c.component == component, c.train == train, c.version == version
            )
        )
        row = result.first()
    return _record(row._mapping, environment) if row is not None else None


async def get_release(db: Database, release_id: int, *, environment: str) -> ReleaseRecord | None:
    return (await releases_by_ids(db, [release_id], environment=environment)).get(release_id)


async def releases_by_ids(
    db: Database, ids: Sequence[int], *, environment: str
) -> dict[int, ReleaseRecord]:
    async with db.connection() as connection:
        rows = await connection.execute(
            select(release_table).where(release_table.c.id.in_(list(ids)))
        )
        return {int(row.id): _record(row._mapping, environment) for row in rows}


# --- querying -----------------------------------------------------------------------------------


def release_key(record: ReleaseRecord, by_release_time: bool) -> tuple[int, ...]:
    """The keyset position of a release: (release time in µs, id), or (id,) in creation
    order."""
    if by_release_time:
        return (_micros(record.released_at), record.id)
    return (record.id,)


def _micros(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: int) -> datetime:
    return datetime.fromtimestamp(value // 1_000_000, tz=UTC).replace(microsecond=value % 1_000_000)


def _after_clause(position: tuple[int, ...], by_release_time: bool, descending: bool) -> Any:
    c = release_table.c
    if not by_release_time:
        return c.id < position[0] if descending else c.id > position[0]
    at, key = _from_micros(position[0]), position[1]
    if descending:
        return or_(c.released_at < at, and_(c.released_at == at, c.id < key))
    return or_(c.released_at > at, and_(c.released_at == at, c.id > key))


async def list_releases(
    db: Database,
    flt: ReleaseFilter | None,
    *,
    environment: str,
    by_release_time: bool = True,
    descending: bool = True,
    first: int | None = None,
    after: str | None = None,
) -> Page[ReleaseRecord]:
    """Keyset pagination by release time (ties by id), or by id (creation order)."""
    limit, _ = page_bounds(first, None)
    c = release_table.c
    clauses = sql_filter(flt)
    if after is not None:
        try:
            position = decode_keyset(after, 2 if by_release_time else 1)
        except InvalidId as exc:
            raise DeploybotError(ErrorCode.INVALID_INPUT, f"after: {exc}", field="after") from exc
        clauses.append(_after_clause(position, by_release_time, descending))
    order = [c.released_at, c.id] if by_release_time else [c.id]
    query = (
        select(release_table)
        .where(and_(True, *clauses))
        .order_by(*(col.desc() if descending else col.asc() for col in order))
        .limit(limit + 1)
    )
    async with db.connection() as connection:
        rows = list((await connection.execute(query)).all())
    records = [_record(row._mapping, environment) for row in rows[:limit]]
    edges = [Edge(encode_keyset(*release_key(r, by_release_time)), r) for r in records]
    return Page(edges, has_next=len(rows) > limit, has_previous=after is not None)


async def count_releases(db: Database, flt: ReleaseFilter | None) -> int:
    async with db.connection() as connection:
        result = await connection.execute(
            select(func.count()).select_from(release_table).where(and_(True, *sql_filter(flt)))
        )
        return int(result.scalar_one())


ReleaseKey = tuple[str, str, str]
"""(component, train, version): what makes a release one release across environments."""


async def release_keys(db: Database, flt: ReleaseFilter | None) -> list[ReleaseKey]:
    """The (component, train, version) of every release matching `flt` (a relay counts the
    union of its environments' catalogues with them)."""
    c = release_table.c
    async with db.connection() as connection:
        rows = await connection.execute(
            select(c.component, c.train, c.version).where(and_(True, *sql_filter(flt)))
        )
        return [(r.component, r.train, r.version) for r in rows]


async def releases_named(
    db: Database, flt: ReleaseFilter | None, keys: Sequence[ReleaseKey], *, environment: str
) -> list[ReleaseRecord]:
    """The releases among `keys` that match `flt` (a relay's look-up of a release's twins
    on its other environments)."""
    c = release_table.c
    found: list[ReleaseRecord] = []
    wanted = set(keys)
    components = sorted({k[0] for k in wanted})
    async with db.connection() as connection:
        for start in range(0, len(components), 500):
            rows = await connection.execute(
                select(release_table).where(
                    c.component.in_(components[start : start + 500]), *sql_filter(flt)
                )
            )
            found += [
                _record(row._mapping, environment)
                for row in rows
                if (row.component, row.train, row.version) in wanted
            ]
    return found


async def latest_release(
    db: Database, component: str, train: str, *, environment: str, by_semver: bool = False
) -> ReleaseRecord | None:
    """The newest release of a component on a train: by release time (ties: the later
    published), or by semantic-version precedence (ties: the later released)."""
    c = release_table.c
    where = and_(c.component == component, c.train == train)
    async with db.connection() as connection:
        if not by_semver:
            result = await connection.execute(
                select(release_table)
                .where(where)
                .order_by(c.released_at.desc(), c.id.desc())
                .limit(1)
            )
            row = result.first()
            return _record(row._mapping, environment) if row is not None else None
        candidates = (
            await connection.execute(select(c.id, c.version, c.released_at).where(where))
        ).all()
    if not candidates:
        return None
    best = max(
        candidates,
        key=lambda r: (semver.precedence_key(r.version), r.released_at, r.id),
    )
    return await get_release(db, int(best.id), environment=environment)


# --- releases published by deployments ----------------------------------------------------------


def train_for(settings: Settings, branch: str | None) -> str:
    """The train of a deployed branch: the configured map, else the branch's own name; no
    known branch (an image, a recording without ref) → the default train."""
    if not branch:
        return settings.release_default_train
    mapped = settings.release_train_map.get(branch)
    if mapped:
        return mapped
    return branch if _TRAIN_RE.match(branch) else settings.release_default_train


async def publish_deployment_release(
    db: Database, settings: Settings, deployment_id: int, *, branch: str | None
) -> int | None:
    """Link a successful deployment to its release, publishing the release if it is new.

    Component: the application (its repository's name); train: from the branch; version:
    the deployment's (a tag at the commit, else the short sha); time: the commit's (else
    the deployment's end). Deploying a published version again links to that release.
    A deployment that names no application (recorded so) links to none.
    """
    deployment = await get_deployment(db, deployment_id)
    if deployment is None or not deployment.version or deployment.application is None:
        return None  # no release without a version, nor without a component to be of
    request = PublishRequest(
        component=deployment.application,
        train=train_for(settings, branch),
        version=deployment.version,
        released_at=deployment.committed_at or deployment.finished_at or utcnow(),
        data={
            key: value
            for key, value in {
                "deployment": deployment_id,
                "environment": deployment.environment,
                "repositoryUrl": deployment.repository_url,
                "ref": deployment.ref,
                "commitSha": deployment.commit_sha,
                "commitMessage": deployment.commit_message,
                "image": deployment.image,
            }.items()
            if value is not None
        },
    )
    try:
        record = await publish_release(
            db, request, environment=settings.environment, deployment_id=deployment_id
        )
    except ValidationFailed:
        return None  # a version or application the catalogue can't hold: no release
    except DeploybotError as exc:
        if exc.code is not ErrorCode.RELEASE_EXISTS:
            raise
        found = await find_release(
            db,
            request.component,
            request.train,
            request.version,
            environment=settings.environment,
        )
        if found is None:
            return None
        record = found
    release_id = int(record.id)
    async with db.transaction() as session:
        await session.execute(
            update(deployment_table)
            .where(deployment_table.c.id == deployment_id)
            .values(release_id=release_id)
        )
    return release_id
