"""Deployments made by other tools (seeds 001 and 004): recorded here, moved through their
states by their own runner, annotated with results. deploybot's runner never touches them.

Recording is forgiving (Sponge): nothing is required. A record without an application or a
version keeps none (it is shown as such, belongs to no application's history of current
versions and releases, and only grants for every application reach it), and what is
missing is filled in where it can be told: a deployment recorded in a
final state without times finished when it was recorded; a duration with one end
gives the other. It is not forgiving about what would corrupt the history: another
environment's deployment, an impossible state change, times that run backwards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.exc import IntegrityError

from deploybot.config import Settings
from deploybot.core import history, releases
from deploybot.core.history import require_deployment
from deploybot.core.lifecycle import finish_deployment
from deploybot.core.logs import LogWriter
from deploybot.core.requests import NAME_RE
from deploybot.db.engine import Database
from deploybot.db.models import (
    Deployment,
    DeploymentResult,
    ServiceRollout,
    deployment_table,
    service_table,
)
from deploybot.domain import DeploymentState, DeploymentTrigger, LogSource, LogStream
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.events.bus import DeploymentEvent, EventBus
from deploybot.filters import SHA_RE
from deploybot.inputs import RecordedService, RecordRequest
from deploybot.records import DeploymentRecord, ResultRecord, ServiceRolloutRecord
from deploybot.times import parse_rfc3339, utcnow

_SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

#: States an outside reporter may set; INACTIVE is deploybot's (a newer success retires one).
REPORTABLE = frozenset(s for s in DeploymentState if s is not DeploymentState.INACTIVE)

#: Legal moves of a recorded deployment (IN_PROGRESS again: a progress message); a final
#: state is never left.
TRANSITIONS: dict[DeploymentState, frozenset[DeploymentState]] = {
    DeploymentState.QUEUED: REPORTABLE - {DeploymentState.QUEUED},
    DeploymentState.IN_PROGRESS: REPORTABLE - {DeploymentState.QUEUED},
}


class _Errors:
    def __init__(self) -> None:
        self.errors: list[DeploybotError] = []

    def fail(self, field: str, message: str, code: ErrorCode = ErrorCode.INVALID_INPUT) -> None:
        self.errors.append(DeploybotError(code, message, field=field))

    def time(self, field: str, value: str | datetime | None) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        try:
            return parse_rfc3339(value)
        except ValueError:
            self.fail(field, f"{value!r} is not an RFC 3339 time (no offset means UTC)")
            return None

    def span(
        self,
        prefix: str,
        started: str | datetime | None,
        finished: str | datetime | None,
        duration: float | None,
        *,
        default_end: datetime | None,
    ) -> tuple[datetime | None, datetime | None]:
        """Start and end from what was given: a duration with one end gives the other."""
        start = self.time(f"{prefix}startedAt", started)
        end = self.time(f"{prefix}finishedAt", finished)
        if duration is not None and duration < 0:
            self.fail(f"{prefix}duration", "duration must not be negative")
        elif duration is not None:
            if start is None and end is None:
                end = default_end
            if start is not None and end is None:
                end = start + timedelta(seconds=duration)
            elif end is not None and start is None:
                start = end - timedelta(seconds=duration)
        if start is not None and end is not None and end < start:
            self.fail(f"{prefix}finishedAt", "finishedAt is before startedAt")
        return start, end


def _check_strings(errors: _Errors, name: str, values: Sequence[str], limit: int) -> None:
    for index, value in enumerate(values):
        if not value.strip() or len(value) > limit:
            errors.fail(f"{name}[{index}]", f"{name} entries must be 1-{limit} characters")


def version_of(request: RecordRequest) -> str | None:
    return request.version.strip() if request.version is not None else None


def _check_fields(errors: _Errors, request: RecordRequest, settings: Settings) -> str:
    """The recording's own fields; answers the environment it records."""
    if request.application is not None and not NAME_RE.match(request.application):
        errors.fail(
            "application",
            "application must be 1-63 lowercase letters, digits, '-' or '_', starting with a"
            " letter or digit",
        )
    if request.version is not None and not 0 < len(request.version.strip()) <= 255:
        errors.fail("version", "version must be 1 to 255 characters")
    environment = request.environment or settings.environment
    if environment != settings.environment:
        errors.fail(
            "environment",
            f"this instance records {settings.environment!r}, not {environment!r}; send it to"
            " that environment's deploybot or to the relay",
            ErrorCode.WRONG_ENVIRONMENT,
        )
    if request.state not in REPORTABLE:
        errors.fail("state", f"{request.state.value} is set by deploybot, not recorded")
    if request.commit_sha is not None and not SHA_RE.match(request.commit_sha):
        errors.fail("commitSha", f"{request.commit_sha!r} is not a commit sha")
    _check_strings(errors, "references", request.references, 255)
    _check_strings(errors, "hosts", request.hosts, 255)
    _check_strings(errors, "platforms", request.platforms, 255)
    return environment


def _times(
    errors: _Errors, request: RecordRequest, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """Start and end: given, inferred from a duration, or (a final state) now."""
    final = request.state.is_final
    started_at, finished_at = errors.span(
        "", request.started_at, request.finished_at, request.duration, default_end=now
    )
    if final and finished_at is None:
        finished_at = now  # recorded after the fact: it had finished by now
    if request.state is DeploymentState.IN_PROGRESS and started_at is None:
        started_at = now
    if not final and finished_at is not None:
        errors.fail("finishedAt", f"a {request.state.value} deployment has not finished")
    return started_at, finished_at


def _services(
    errors: _Errors,
    recorded: Sequence[RecordedService],
    *,
    version: str | None,
    state: DeploymentState,
    finished_at: datetime | None,
    seen: set[str],
) -> list[dict[str, Any]]:
    """The recorded services (Sponge's packages) as service-rollout rows; `seen` holds the
    names already recorded."""
    services: list[dict[str, Any]] = []
    for index, service in enumerate(recorded):
        prefix = f"services[{index}]."
        if not _SERVICE_RE.match(service.name):
            errors.fail(prefix + "name", "service names are 1-200 letters, digits, '.', '_', '-'")
        elif service.name in seen:
            errors.fail(prefix + "name", f"service {service.name} is recorded twice")
        seen.add(service.name)
        _check_strings(errors, prefix + "hosts", service.hosts, 255)
        start, end = errors.span(
            prefix,
            service.started_at,
            service.finished_at,
            service.duration,
            default_end=finished_at,
        )
        services.append(
            {
                "service": service.name,
                "version": service.version or version,
                "image": service.image,
                "nodes": list(service.hosts),
                "started_at": start,
                "finished_at": end,
                "state": "converged" if state is DeploymentState.SUCCESS else None,
            }
        )
    return services


async def record_deployment(
    db: Database, bus: EventBus, settings: Settings, request: RecordRequest
) -> DeploymentRecord:
    """Record a deployment another tool ran (trigger EXTERNAL). A success becomes the
    application's current deployment, unless a newer success is already recorded."""
    errors = _Errors()
    environment = _check_fields(errors, request, settings)
    now = utcnow()
    committed_at = errors.time("committedAt", request.committed_at)
    started_at, finished_at = _times(errors, request, now)
    application = request.application
    version = version_of(request)
    services = _services(
        errors,
        request.services,
        version=version,
        state=request.state,
        finished_at=finished_at,
        seen=set(),
    )
    if errors.errors:
        raise ValidationFailed(errors.errors)

    state = request.state
    async with db.transaction() as session:
        current = (
            await _current_success(session, application, environment)
            if application is not None
            else None  # no application: nothing it could supersede or follow
        )
        if (
            state is DeploymentState.SUCCESS
            and current is not None
            and current.finished_at is not None
            and finished_at is not None
            and current.finished_at > finished_at
        ):
            state = DeploymentState.INACTIVE  # an older success recorded late
        deployment = Deployment(
            environment=environment,
            application=application,
            version=version,
            previous_version=current.version if current is not None else None,
            state=state,
            trigger=DeploymentTrigger.EXTERNAL,
            provider=request.provider,
            actor=request.actor,
            requested_by=request.requested_by,
            team=request.team,
            description=request.notes,
            references=list(request.references),
            hosts=list(dict.fromkeys(request.hosts)),
            platforms=list(dict.fromkeys(request.platforms)),
            repository_url=request.repository_url,
            ref=request.ref,
            commit_sha=request.commit_sha.lower() if request.commit_sha else None,
            committed_at=committed_at,
            original_request=request.original_request,
            created_at=now,
            updated_at=now,
            started_at=started_at,
            finished_at=finished_at,
        )
        session.add(deployment)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise DeploybotError(
                ErrorCode.DEPLOYMENT_IN_PROGRESS,
                f"{application or 'this'} already has a deployment in progress on {environment}",
                field="state",
            ) from exc
        assert deployment.id is not None
        deployment_id = deployment.id
        for values in services:
            session.add(ServiceRollout(deployment_id=deployment_id, **values))
    bus.publish(DeploymentEvent(deployment_id, state.value, "created"))
    if state is DeploymentState.SUCCESS:
        await _settle_success(db, bus, settings, deployment_id, finished_at, request.ref)
    elif state is DeploymentState.INACTIVE:  # not current, but still a release that happened
        await releases.publish_deployment_release(db, settings, deployment_id, branch=request.ref)
    return await require_deployment(db, deployment_id)


async def _current_success(session: Any, application: str, environment: str) -> Row[Any] | None:
    c = deployment_table.c
    result = await session.execute(
        select(c.id, c.version, c.finished_at)
        .where(
            c.application == application,
            c.environment == environment,
            c.state == DeploymentState.SUCCESS,
        )
        .order_by(c.id.desc())
        .limit(1)
    )
    row: Row[Any] | None = result.first()
    return row


async def _settle_success(
    db: Database,
    bus: EventBus,
    settings: Settings,
    deployment_id: int,
    finished_at: datetime | None,
    branch: str | None,
) -> None:
    """What a success means for the rest of the history, as for deploybot's own: the previous
    success retires, the application's current version moves, the release is linked."""
    await finish_deployment(
        db, bus, deployment_id, DeploymentState.SUCCESS, finished_at=finished_at
    )
    await releases.publish_deployment_release(db, settings, deployment_id, branch=branch)


async def report_status(
    db: Database,
    bus: EventBus,
    settings: Settings,
    deployment_id: int,
    state: DeploymentState,
    message: str | None = None,
) -> DeploymentRecord:
    """An outside runner moves its deployment on (SPEED's update): only legal moves of a
    recorded deployment; deploybot's own deployments are its runner's alone."""
    record = await require_deployment(db, deployment_id)
    if record.trigger is not DeploymentTrigger.EXTERNAL:
        raise DeploybotError(
            ErrorCode.NOT_EXTERNAL,
            f"deployment {deployment_id} is run by deploybot; only recorded deployments"
            " take status reports",
            field="id",
        )
    current = record.state
    if state not in TRANSITIONS.get(current, frozenset()):
        reason = "is final" if current.is_final else f"cannot become {state.value}"
        raise DeploybotError(
            ErrorCode.INVALID_STATE_TRANSITION,
            f"deployment {deployment_id} is {current.value} and {reason}",
            field="state",
        )
    now = utcnow()
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if state is DeploymentState.IN_PROGRESS and record.started_at is None:
        values["started_at"] = now
    c = deployment_table.c
    try:
        async with db.transaction() as session:
            # Conditional on the state read above: of two racing reports, one wins.
            result = await session.execute(
                update(deployment_table)
                .where(c.id == deployment_id, c.state == current)
                .values(**values)
            )
    except IntegrityError as exc:
        raise DeploybotError(
            ErrorCode.DEPLOYMENT_IN_PROGRESS,
            f"{record.application or 'this'} already has another deployment in progress",
            field="state",
        ) from exc
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise DeploybotError(
            ErrorCode.INVALID_STATE_TRANSITION,
            f"deployment {deployment_id} changed state meanwhile; read it again",
            field="state",
        )
    failed = state in (DeploymentState.FAILURE, DeploymentState.ERROR)
    if message:
        async with LogWriter(db, bus, deployment_id) as log:
            log.write(
                f"{state.value}: {message}",
                source=LogSource.SYSTEM,
                stream=LogStream.STDERR if failed else LogStream.STDOUT,
                source_name="reporter",
            )
    if state is DeploymentState.SUCCESS:
        await _settle_success(db, bus, settings, deployment_id, None, record.ref)
    elif state.is_final:
        await finish_deployment(
            db, bus, deployment_id, state, error_message=message if failed else None
        )
    else:
        bus.publish(DeploymentEvent(deployment_id, state.value))
    return await require_deployment(db, deployment_id)


async def add_result(
    db: Database, bus: EventBus, deployment_id: int, data: Any
) -> tuple[DeploymentRecord, ResultRecord]:
    """Attach a result to any deployment (SPEED's add_results); empty results are refused."""
    if (
        data is None
        or data == ""
        or data == {}
        or data == []
        or (isinstance(data, str) and not data.strip())
    ):
        raise DeploybotError(ErrorCode.INVALID_INPUT, "missing results data", field="result")
    record = await require_deployment(db, deployment_id)
    async with db.transaction() as session:
        result = DeploymentResult(deployment_id=deployment_id, data=data, created_at=utcnow())
        session.add(result)
        await session.flush()
        assert result.id is not None
        stored = ResultRecord(result.id, deployment_id, result.data, result.created_at)
    bus.publish(DeploymentEvent(deployment_id, None))
    return record, stored


async def add_services(
    db: Database, bus: EventBus, deployment_id: int, recorded: Sequence[RecordedService]
) -> list[ServiceRolloutRecord]:
    """Add services (Sponge's packages, with versions, hosts and durations) to a recorded
    deployment after the fact; their hosts join the deployment's. Answers all its services."""
    record = await require_deployment(db, deployment_id)
    if record.trigger is not DeploymentTrigger.EXTERNAL:
        raise DeploybotError(
            ErrorCode.NOT_EXTERNAL,
            f"deployment {deployment_id} is run by deploybot; its services are its runner's",
            field="id",
        )
    if not recorded:
        raise DeploybotError(ErrorCode.INVALID_INPUT, "no services to add", field="services")
    c = service_table.c
    async with db.session() as session:
        names = await session.execute(select(c.service).where(c.deployment_id == deployment_id))
        seen = {row[0] for row in names}
    errors = _Errors()
    rows = _services(
        errors,
        recorded,
        version=record.version,
        state=record.state,
        finished_at=record.finished_at,
        seen=seen,
    )
    if errors.errors:
        raise ValidationFailed(errors.errors)
    hosts = list(dict.fromkeys([*record.hosts, *(h for s in recorded for h in s.hosts)]))
    async with db.transaction() as session:
        for values in rows:
            session.add(ServiceRollout(deployment_id=deployment_id, **values))
        await session.execute(
            update(deployment_table)
            .where(deployment_table.c.id == deployment_id)
            .values(hosts=hosts, updated_at=utcnow())
        )
    bus.publish(DeploymentEvent(deployment_id, None))
    return (await history.services_for(db, [deployment_id])).get(deployment_id, [])
