"""Deployments: creating them (with every check before anything is written),
the state machine the runner drives, and the filtered, keyset-paginated history.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row, Select, and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deploybot.config import Settings
from deploybot.core import admission, pg_history
from deploybot.core.applications import SwarmInspector, check_dependencies
from deploybot.core.filters import (
    SHA_RE,
    DeploymentFilter,
    check_filter,
    glob_to_like,
    is_glob,
    sha_prefix,
)
from deploybot.core.rollout_options import RolloutOptions, check_options
from deploybot.db.engine import Database
from deploybot.db.models import Application, Deployment, DeploymentStep, ServiceRollout
from deploybot.db.types import utcnow
from deploybot.domain import (
    ApplicationState,
    DeploymentState,
    DeploymentStrategy,
    DeploymentTrigger,
    Health,
    StepName,
    StepStatus,
)
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.events.bus import DeploymentEvent, EventBus

DEFAULT_STACK_FILE = "docker-compose.stack.yml"
MAX_PAGE = 100

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

DeploymentRecord = Row[Any]
"""A deployment row as read by the queries below (attribute access by column name)."""

deployment_table = Deployment.__table__  # type: ignore[attr-defined]
step_table = DeploymentStep.__table__  # type: ignore[attr-defined]
service_table = ServiceRollout.__table__  # type: ignore[attr-defined]


# --- creating ---------------------------------------------------------------------------------


@dataclass
class DeployRequest:
    """What a caller asks for; GraphQL, webhooks and the CLI all build one of these."""

    repository_url: str | None = None
    commit_sha: str | None = None
    ref: str | None = None
    application: str | None = None
    environment: str | None = None
    stack_file: str | None = None
    version: str | None = None
    description: str | None = None
    references: list[str] = field(default_factory=list)
    image: str | None = None
    service: str | None = None
    strategy: DeploymentStrategy = DeploymentStrategy.ROLLING
    trigger: DeploymentTrigger = DeploymentTrigger.API
    provider: str | None = None
    actor: str | None = None
    team: str | None = None
    original_request: dict[str, Any] | None = None
    mapped_request: dict[str, Any] | None = None
    queue: bool = False
    dependencies: list[str] = field(default_factory=list)
    idempotency_key: str | None = None
    rollout: RolloutOptions = field(default_factory=RolloutOptions)


@dataclass(frozen=True)
class SourceInfo:
    """What the runner found at the requested commit, before anything is written."""

    commit_sha: str
    ref: str | None
    version: str
    commit_message: str | None
    commit_author: str | None
    committed_at: datetime | None
    stack_file: str
    services: list[str]
    builds: bool
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageInfo:
    image: str
    digest: str | None
    tag: str | None


class SourceInspector(Protocol):
    """The runner's side of a deploy request: look at the source without changing anything."""

    async def inspect_git(
        self,
        repository_url: str,
        *,
        sha: str | None,
        ref: str | None,
        stack_file: str,
        application: str,
    ) -> SourceInfo: ...

    async def inspect_image(self, image: str) -> ImageInfo: ...

    async def image_available(self, image: str) -> bool:
        """Whether a recorded image reference can still run (registry or the node)."""
        ...


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


def check_request(request: DeployRequest, settings: Settings) -> None:
    """The request's own fields, checked without any I/O (ValidationFailed lists them all)."""
    errors: list[DeploybotError] = []

    def fail(field_name: str, message: str, code: ErrorCode = ErrorCode.INVALID_INPUT) -> None:
        errors.append(DeploybotError(code, message, field=field_name))

    if request.environment and request.environment != settings.environment:
        fail(
            "environment",
            f"this instance deploys to {settings.environment!r}, not {request.environment!r};"
            " send the request to that environment's deploybot or to the relay",
            ErrorCode.WRONG_ENVIRONMENT,
        )
    if request.repository_url and request.image:
        fail("image", "give either repositoryUrl (a git deploy) or image (a prebuilt image)")
    elif not request.repository_url and not request.image:
        fail("repositoryUrl", "repositoryUrl (with commitSha or ref) or image is required")
    if request.repository_url is not None and not request.repository_url.strip():
        fail("repositoryUrl", "repositoryUrl must not be empty")
    if request.repository_url and not (request.commit_sha or request.ref):
        fail("commitSha", "give the commitSha to deploy, or a ref (branch or tag) to resolve")
    if request.commit_sha and not SHA_RE.match(request.commit_sha):
        fail("commitSha", f"{request.commit_sha!r} is not a commit sha (4 to 40 hex digits)")
    if request.application is not None and not _NAME_RE.match(request.application):
        fail(
            "application",
            "application must be 1-63 lowercase letters, digits, '-' or '_', starting with a"
            " letter or digit",
        )
    if request.service is not None and not _NAME_RE.match(request.service):
        fail("service", "service must be 1-63 lowercase letters, digits, '-' or '_'")
    if request.stack_file is not None:
        parts = request.stack_file.split("/")
        if request.stack_file.startswith("/") or ".." in parts or not request.stack_file.strip():
            fail("stackFile", "stackFile must be a path inside the repository")
    if request.version is not None and not (0 < len(request.version) <= 255):
        fail("version", "version must be 1 to 255 characters")
    if request.idempotency_key is not None and not (0 < len(request.idempotency_key) <= 255):
        fail("idempotencyKey", "idempotencyKey must be 1 to 255 characters")
    bad = [d for d in request.dependencies if not _NAME_RE.match(d)]
    if bad:
        fail("dependencies", f"{bad[0]!r} is not an application name")
    errors.extend(check_options(request.rollout))
    if errors:
        raise ValidationFailed(errors)


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


async def inspect_source(
    settings: Settings, inspector: SourceInspector, request: DeployRequest, application: str
) -> PreparedDeployment:
    """The request's source, looked at without changing anything (the runner's preflight)."""
    values: dict[str, Any] = {}
    warnings: tuple[str, ...] = ()
    if request.repository_url:
        stack_file = request.stack_file or DEFAULT_STACK_FILE
        info = await inspector.inspect_git(
            request.repository_url.strip(),
            sha=request.commit_sha,
            ref=request.ref,
            stack_file=stack_file,
            application=application,
        )
        values.update(
            repository_url=request.repository_url.strip(),
            commit_sha=info.commit_sha,
            ref=info.ref,
            commit_message=info.commit_message,
            commit_author=info.commit_author,
            committed_at=info.committed_at,
            version=request.version or info.version,
            stack_file=info.stack_file,
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


def application_of(request: DeployRequest) -> str:
    return request.application or application_name_from(request.repository_url, request.image)


async def create_deployment(
    db: Database,
    bus: EventBus,
    settings: Settings,
    inspector: SourceInspector,
    request: DeployRequest,
    *,
    swarm: SwarmInspector | None = None,
) -> DeploymentRecord:
    """Check everything a deploy needs, then queue it. Nothing is written when a check fails.

    A retry with the same idempotency key answers the deployment it created; a deployment
    already under way refuses the request unless it asks to queue (see core.admission).
    """
    check_request(request, settings)
    environment = settings.environment
    application = application_of(request)
    active = await admission.active_deployments(db, application, environment)
    # Read after `active`, so a retry's first attempt seen there is seen here too.
    replayed = await admission.replay(db, environment, request)
    if replayed is None:
        if active and not request.queue:
            raise admission.in_progress_error(application, active)
        if request.dependencies:
            if swarm is None:
                raise DeploybotError(
                    ErrorCode.DEPENDENCY_FAILED, "dependencies cannot be checked here"
                )
            await check_dependencies(db, swarm, environment, request.dependencies)
        prepared = await inspect_source(settings, inspector, request, application)
        try:
            replayed, created, superseded = await _admit(db, settings, request, prepared)
        except IntegrityError:
            # The same key was just taken by a request for another application.
            replayed = await admission.replay(db, environment, request)
            if replayed is None:
                raise
        else:
            for old in superseded:
                bus.publish(DeploymentEvent(old, DeploymentState.CANCELLED.value))
            if created:
                bus.publish(DeploymentEvent(replayed, DeploymentState.QUEUED.value, "created"))
    record = await get_deployment(db, replayed)
    assert record is not None
    return record


async def _admit(
    db: Database, settings: Settings, request: DeployRequest, prepared: PreparedDeployment
) -> tuple[int, bool, list[int]]:
    """Write the deployment under the application's lock: (its id, whether it is new (not
    written meanwhile by an identical request with the same key), the ids it superseded)."""
    now = utcnow()
    application = prepared.application
    async with db.transaction() as session:
        previous_version = await admission.lock_application(
            session, application, settings.environment
        )
        replayed = await admission.replay(session, settings.environment, request)
        if replayed is not None:
            return replayed, False, []
        superseded = await admission.make_room(
            session, application, settings.environment, queue=request.queue
        )
        deployment = Deployment(
            environment=settings.environment,
            application=application,
            previous_version=previous_version,
            strategy=request.strategy,
            trigger=request.trigger,
            provider=request.provider,
            actor=request.actor,
            team=request.team,
            description=request.description,
            references=list(request.references),
            original_request=request.original_request,
            mapped_request=request.mapped_request,
            rollout_options=request.rollout.to_json(),
            state=DeploymentState.QUEUED,
            created_at=now,
            updated_at=now,
            idempotency_key=request.idempotency_key,
            request_fingerprint=admission.fingerprint(request),
            dependencies=list(request.dependencies) or None,
            **prepared.values,
        )
        session.add(deployment)
        await session.flush()
        assert deployment.id is not None
        for position, step in enumerate(prepared.steps):
            session.add(
                DeploymentStep(deployment_id=deployment.id, position=position, name=step.value)
            )
        await admission.name_successor(session, superseded, deployment.id)
        return deployment.id, True, superseded


async def find_application(
    session: AsyncSession, name: str, environment: str
) -> Application | None:
    result = await session.execute(
        select(Application).where(
            Application.__table__.c.name == name,  # type: ignore[attr-defined]
            Application.__table__.c.environment == environment,  # type: ignore[attr-defined]
        )
    )
    return result.scalar_one_or_none()


# --- the runner's side of the state machine ---------------------------------------------------


async def claim_next(db: Database, environment: str, runner_id: str) -> int | None:
    """Take the oldest queued deployment whose application has nothing in progress.

    The conditional UPDATE is the claim: of two runners racing for one row,
    exactly one sees a row count of 1; and the partial unique index on
    (application, environment) WHERE state = 'IN_PROGRESS' refuses a second
    deployment of the same application, on SQLite and PostgreSQL alike.
    """
    c = deployment_table.c
    busy = (
        select(c.application)
        .where(c.environment == environment, c.state == DeploymentState.IN_PROGRESS)
        .scalar_subquery()
    )
    async with db.session() as session:
        candidates = list(
            (
                await session.execute(
                    select(c.id)
                    .where(
                        c.environment == environment,
                        c.state == DeploymentState.QUEUED,
                        c.trigger != DeploymentTrigger.EXTERNAL,  # recorded, not run here
                        c.application.not_in(busy),
                    )
                    .order_by(c.id)
                    .limit(5)
                )
            ).scalars()
        )
    apps = Application.__table__  # type: ignore[attr-defined]
    # A queued deployment follows whatever succeeded while it waited.
    current_version = (
        select(apps.c.current_version)
        .where(apps.c.name == c.application, apps.c.environment == c.environment)
        .scalar_subquery()
    )
    for candidate in candidates:
        now = utcnow()
        try:
            async with db.transaction() as session:
                result = await session.execute(
                    update(deployment_table)
                    .where(c.id == candidate, c.state == DeploymentState.QUEUED)
                    .values(
                        state=DeploymentState.IN_PROGRESS,
                        previous_version=current_version,
                        runner_id=runner_id,
                        started_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            continue  # another runner started this application meanwhile
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return int(candidate)
    return None


async def heartbeat(db: Database, deployment_id: int) -> None:
    """A running deployment says it is alive (its runner may be in a long wait)."""
    await update_deployment(db, deployment_id)


def runner_alive(runner_id: str, hostname: str) -> bool | None:
    """Whether a runner id (`host-pid-nonce`) of this host still runs; None if not ours."""
    host, _, rest = runner_id.rpartition("-")[0].rpartition("-")
    pid = rest
    if host != hostname or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def abandoned(
    db: Database, environment: str, hostname: str, *, stale_after: float
) -> list[int]:
    """IN_PROGRESS deployments whose runner is gone: a dead process on this host, or no
    heartbeat for `stale_after` seconds (a runner elsewhere, or a reused pid)."""
    c = deployment_table.c
    cutoff = utcnow() - timedelta(seconds=stale_after)
    async with db.connection() as connection:
        rows = (
            await connection.execute(
                select(c.id, c.runner_id, c.updated_at).where(
                    c.environment == environment,
                    c.state == DeploymentState.IN_PROGRESS,
                    c.trigger != DeploymentTrigger.EXTERNAL,  # its reporter ends it, not a runner
                )
            )
        ).all()
    lost = []
    for row in rows:
        if runner_alive(row.runner_id or "", hostname) is False or row.updated_at < cutoff:
            lost.append(int(row.id))
    return lost


async def set_step(
    db: Database,
    deployment_id: int,
    name: StepName,
    status: StepStatus,
    *,
    message: str | None = None,
    error: str | None = None,
    bus: EventBus | None = None,
) -> None:
    """Move a step; with a bus, progress subscribers hear of it."""
    now = utcnow()
    values: dict[str, Any] = {"status": status}
    if message is not None:
        values["message"] = message
    if error is not None:
        values["error"] = error
    if status is StepStatus.RUNNING:
        values["started_at"] = now
    elif status in (
        StepStatus.COMPLETED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
    ):
        values["finished_at"] = now
    async with db.transaction() as session:
        await session.execute(
            update(step_table)
            .where(step_table.c.deployment_id == deployment_id, step_table.c.name == name.value)
            .values(**values)
        )
        await session.execute(
            update(deployment_table)
            .where(deployment_table.c.id == deployment_id)
            .values(updated_at=now)
        )
    if bus is not None:
        bus.publish(
            DeploymentEvent(
                deployment_id,
                None,
                "step",
                step=name.value,
                step_status=status.value,
                message=error or message,
            )
        )


async def update_deployment(db: Database, deployment_id: int, **values: Any) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(deployment_table)
            .where(deployment_table.c.id == deployment_id)
            .values(updated_at=utcnow(), **values)
        )


async def save_service_rollout(
    db: Database, deployment_id: int, service: str, **values: Any
) -> None:
    async with db.transaction() as session:
        existing = (
            await session.execute(
                select(ServiceRollout).where(
                    service_table.c.deployment_id == deployment_id,
                    service_table.c.service == service,
                )
            )
        ).scalar_one_or_none()
        if existing is None:
            session.add(ServiceRollout(deployment_id=deployment_id, service=service, **values))
        else:
            for key, value in values.items():
                setattr(existing, key, value)


async def finish_deployment(
    db: Database,
    bus: EventBus,
    deployment_id: int,
    state: DeploymentState,
    *,
    error_code: ErrorCode | None = None,
    error_message: str | None = None,
    swarm_changed: bool = False,
    finished_at: datetime | None = None,
) -> None:
    """End a deployment. A success retires the previous success of the application (INACTIVE)
    and becomes the application's current deployment. `finished_at`: when it ended, if not
    now (a deployment recorded after the fact)."""
    now = utcnow()
    async with db.transaction() as session:
        deployment = await session.get(Deployment, deployment_id)
        if deployment is None:
            raise DeploybotError(ErrorCode.DEPLOYMENT_NOT_FOUND, f"deployment {deployment_id}")
        deployment.state = state
        deployment.finished_at = finished_at or now
        deployment.updated_at = now
        deployment.error_code = error_code.value if error_code else None
        deployment.error_message = error_message
        await admission.skip_pending_steps(session, [deployment_id])
        await session.execute(
            update(step_table)
            .where(
                step_table.c.deployment_id == deployment_id,
                step_table.c.status == StepStatus.RUNNING,
            )
            .values(
                status=StepStatus.CANCELLED
                if state is DeploymentState.CANCELLED
                else StepStatus.FAILED,
                finished_at=now,
                error=error_message,
            )
        )
        app = await find_application(session, deployment.application, deployment.environment)
        if app is None:
            app = Application(name=deployment.application, environment=deployment.environment)
            session.add(app)
        app.updated_at = now
        retired: list[int] = []
        if state is DeploymentState.SUCCESS:
            superseded = (
                deployment_table.c.application == deployment.application,
                deployment_table.c.environment == deployment.environment,
                deployment_table.c.state == DeploymentState.SUCCESS,
                deployment_table.c.id != deployment_id,
            )
            retired = list(
                (
                    await session.execute(
                        update(deployment_table)
                        .where(*superseded)
                        .values(state=DeploymentState.INACTIVE, updated_at=now)
                        .returning(deployment_table.c.id)
                    )
                ).scalars()
            )
            app.current_deployment_id = deployment_id
            app.current_version = deployment.version
            app.repository_url = deployment.repository_url or app.repository_url
            app.stack_file = deployment.stack_file or app.stack_file
            app.state = ApplicationState.HEALTHY
            app.health = Health.HEALTHY
        elif state is DeploymentState.ROLLED_BACK:
            app.state = ApplicationState.HEALTHY  # the last good deployment runs again
            app.health = Health.HEALTHY
        elif swarm_changed and state is not DeploymentState.CANCELLED:
            app.state = ApplicationState.FAILED
            app.health = Health.UNKNOWN
    bus.publish(DeploymentEvent(deployment_id, state.value))
    for retired_id in retired:
        bus.publish(DeploymentEvent(retired_id, DeploymentState.INACTIVE.value))


# --- reading ------------------------------------------------------------------------------------


async def get_deployment(db: Database, deployment_id: int) -> DeploymentRecord | None:
    async with db.connection() as connection:
        result = await connection.execute(
            select(deployment_table).where(deployment_table.c.id == deployment_id)
        )
        return result.first()


async def get_deployments(
    db: Database, deployment_ids: Collection[int]
) -> dict[int, DeploymentRecord]:
    async with db.connection() as connection:
        result = await connection.execute(
            select(deployment_table).where(deployment_table.c.id.in_(list(deployment_ids)))
        )
        return {row.id: row for row in result}


def filter_clauses(flt: DeploymentFilter | None) -> list[Any]:
    check_filter(flt)
    if flt is None:
        return []
    c = deployment_table.c
    clauses: list[Any] = []
    if flt.environments:
        clauses.append(c.environment.in_(list(flt.environments)))
    if flt.applications:
        clauses.append(c.application.in_(list(flt.applications)))
    if flt.repository:
        if is_glob(flt.repository):
            clauses.append(c.repository_url.like(glob_to_like(flt.repository), escape="\\"))
        else:
            clauses.append(c.repository_url == flt.repository)
    if flt.commit_sha:
        clauses.append(c.commit_sha.like(sha_prefix(flt.commit_sha)))
    if flt.refs:
        clauses.append(c.ref.in_(list(flt.refs)))
    if flt.states:
        clauses.append(c.state.in_(list(flt.states)))
    if flt.created_after:
        clauses.append(c.created_at >= flt.created_after)
    if flt.created_before:
        clauses.append(c.created_at < flt.created_before)
    return clauses


@dataclass(frozen=True)
class Page:
    rows: list[Mapping[str, Any]]
    has_next: bool
    has_previous: bool


def page_bounds(first: int | None, last: int | None) -> tuple[int, bool]:
    """(limit, backwards) for a connection argument pair, GitHub's rules: 1..100, not both."""
    if first is not None and last is not None:
        raise DeploybotError(ErrorCode.INVALID_INPUT, "pass either first or last, not both")
    count = first if first is not None else last if last is not None else 50
    if not 1 <= count <= MAX_PAGE:
        raise DeploybotError(
            ErrorCode.INVALID_INPUT,
            f"{'last' if last is not None else 'first'} must be between 1 and {MAX_PAGE}",
            field="last" if last is not None else "first",
        )
    return count, last is not None


async def list_deployments(
    db: Database,
    flt: DeploymentFilter | None,
    *,
    descending: bool = True,
    first: int | None = None,
    after: int | None = None,
    last: int | None = None,
    before: int | None = None,
    columns: Collection[str] | None = None,
) -> Page:
    """Keyset pagination over ids (ids grow with creation time, so this is creation order).

    `columns` narrows what is read (the caller knows what it will show); `id` and
    `environment` are always read.
    """
    limit, backwards = page_bounds(first, last)
    check_filter(flt)
    c = deployment_table.c
    lower, upper = (before, after) if descending else (after, before)
    scan_descending = descending != backwards
    if columns is not None:
        columns = {"id", "environment", *columns}
    rows: list[Mapping[str, Any]]
    if not db.is_sqlite:
        rows = await pg_history.fetch_page(
            db,
            flt,
            scan_descending=scan_descending,
            lower=lower,
            upper=upper,
            limit=limit + 1,
            columns=columns,
        )
    else:
        clauses = filter_clauses(flt)
        if lower is not None:
            clauses.append(c.id > lower)
        if upper is not None:
            clauses.append(c.id < upper)
        selected = [col for col in c if columns is None or col.name in columns]
        query: Select[Any] = (
            select(*selected)
            .where(and_(True, *clauses))
            .order_by(c.id.desc() if scan_descending else c.id.asc())
            .limit(limit + 1)
        )
        async with db.connection() as connection:
            rows = [row._mapping for row in (await connection.execute(query)).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        return Page(rows, has_next=before is not None, has_previous=more)
    return Page(rows, has_next=more, has_previous=after is not None)


async def count_deployments(db: Database, flt: DeploymentFilter | None) -> int:
    async with db.session() as session:
        query = (
            select(func.count())
            .select_from(deployment_table)
            .where(and_(True, *filter_clauses(flt)))
        )
        return int((await session.execute(query)).scalar_one())


async def children_for(
    db: Database, table: Any, order: Any, ids: Sequence[int]
) -> dict[int, list[Row[Any]]]:
    """The rows of a table hanging off deployments (steps, services, results), by deployment."""
    out: dict[int, list[Row[Any]]] = {i: [] for i in ids}
    async with db.connection() as connection:
        rows = await connection.execute(
            select(table)
            .where(table.c.deployment_id.in_(list(ids)))
            .order_by(table.c.deployment_id, order)
        )
        for row in rows:
            out[row.deployment_id].append(row)
    return out


async def steps_for(db: Database, ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    return await children_for(db, step_table, step_table.c.position, ids)


async def services_for(db: Database, ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    return await children_for(db, service_table, service_table.c.service, ids)
