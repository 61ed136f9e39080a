"""GraphQL types and inputs of deployments: the deployment, its steps, services and logs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.scalars import JSON

from deploybot import filters
from deploybot.ids import InvalidId, decode_cursor, encode_cursor, encode_id
from deploybot.inputs import DeploymentRef, DeployRequest, ReleaseRef
from deploybot.records import (
    DeploymentRecord,
    LogLineRecord,
    ResultRecord,
    ServiceRolloutRecord,
    StepRecord,
)
from deploybot.schema.common import Node, PageInfo, PublicError, UserError
from deploybot.schema.context import Info
from deploybot.schema.enums import (
    DeploymentOrderField,
    DeploymentState,
    DeploymentStrategy,
    DeploymentTrigger,
    ErrorCode,
    LogSource,
    LogStream,
    OrderDirection,
    StepStatus,
    WebhookProvider,
)
from deploybot.schema.releases import Release
from deploybot.schema.rollout import (
    DeployHookInput,
    HealthCheckInput,
    RollingUpdateInput,
    camel_keys,
    rollout_options,
)
from deploybot.times import seconds_between

T = TypeVar("T")


def from_fields(cls: type[T], record: object, **values: Any) -> T:
    """An instance whose plain fields are the record's attributes of the same names."""
    for field in cls.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        if field.base_resolver is None and field.python_name not in values:
            values[field.python_name] = getattr(record, field.python_name)
    return cls(**values)


@strawberry.type(description="A named phase of a deployment, with its timings.")
class DeploymentStep:
    name: str
    status: StepStatus
    message: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @strawberry.field(description="Seconds the step took (so far, while it runs).")
    def duration(self) -> float | None:
        return seconds_between(self.started_at, self.finished_at)

    @classmethod
    def from_record(cls, record: StepRecord) -> DeploymentStep:
        return from_fields(cls, record)


@strawberry.type(description="What one service of the stack became in this deployment.")
class ServiceRollout:
    service: str = strawberry.field(description="The service's name in the stack file.")
    swarm_name: str | None = strawberry.field(description="The Swarm service (`<stack>_<name>`).")
    swarm_id: str | None
    image: str | None = strawberry.field(description="The image reference deployed.")
    digest: str | None = strawberry.field(description="Registry digest (or local image id).")
    version: str | None
    replicas_desired: int | None
    replicas_running: int | None
    replicas_healthy: int | None
    nodes: list[str] = strawberry.field(description="Hostnames of the nodes its tasks run on.")
    state: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @strawberry.field(description="Seconds from the service's update to its convergence.")
    def duration(self) -> float | None:
        return seconds_between(self.started_at, self.finished_at)

    @classmethod
    def from_record(cls, record: ServiceRolloutRecord) -> ServiceRollout:
        return from_fields(cls, record, nodes=list(record.nodes))


@strawberry.type(description="One line of a deployment's log.")
class LogLine:
    sequence: int = strawberry.field(description="Position in the log, from 1; resume after it.")
    timestamp: datetime
    source: LogSource
    source_name: str | None = strawberry.field(description="The service or build it came from.")
    stream: LogStream
    text: str

    @classmethod
    def from_record(cls, line: LogLineRecord) -> LogLine:
        return cls(
            sequence=line.sequence,
            timestamp=line.timestamp,
            source=line.source,
            source_name=line.source_name,
            stream=line.stream,
            text=line.text,
        )


@strawberry.type
class LogLineEdge:
    cursor: str
    node: LogLine


@strawberry.type
class LogLineConnection:
    edges: list[LogLineEdge]
    nodes: list[LogLine]
    page_info: PageInfo
    deployment: strawberry.Private[DeploymentRef]

    @strawberry.field
    async def total_count(self, info: Info) -> int:
        return await info.context.backend.count_log_lines(self.deployment)


@strawberry.type(description="A result an external runner attached (SPEED's results).")
class DeploymentResult:
    data: JSON
    created_at: datetime

    @classmethod
    def from_record(cls, result: ResultRecord) -> DeploymentResult:
        return cls(data=result.data, created_at=result.created_at)


@strawberry.type(description="One attempt to put a version of an application onto an environment.")
class Deployment(Node):
    id: strawberry.ID
    number: int = strawberry.field(description="Serial number in this environment.")
    environment: str
    application: str | None = strawberry.field(
        description="null: a recorded deployment that named no application (deploybot's own"
        " deployments always name one)."
    )
    repository_url: str | None
    ref: str | None = strawberry.field(description="Branch or tag asked for, if any.")
    commit_sha: str | None = strawberry.field(description="The exact commit deployed.")
    commit_message: str | None
    commit_author: str | None
    committed_at: datetime | None
    version: str | None
    previous_version: str | None = strawberry.field(
        description="The application's version before this deployment."
    )
    strategy: DeploymentStrategy
    state: DeploymentState
    trigger: DeploymentTrigger
    provider: str | None
    provider_repository: str | None = strawberry.field(
        description="owner/name as the provider named the repository (webhook deployments)."
    )
    actor: str | None = strawberry.field(
        description="Who the request says made it (another tool's user, free text)."
    )
    requested_by: str | None = strawberry.field(
        description="The authenticated caller that asked for it (token id and name)."
    )
    team: str | None
    description: str | None
    references: list[str]
    platforms: list[str] = strawberry.field(
        description="Platforms a recorded deployment was for (Sponge's platforms)."
    )
    stack_file: str | None
    working_directory: str | None = strawberry.field(
        description="The repository subdirectory the stack file and build contexts are in."
    )
    image: str | None = strawberry.field(description="The prebuilt image of an image deploy.")
    service: str | None = strawberry.field(description="The service an image deploy targets.")
    original_request: JSON | None = strawberry.field(description="The request as received.")
    mapped_request: JSON | None = strawberry.field(
        description="What a webhook or relay turned the request into."
    )
    error_code: ErrorCode | None
    error_message: str | None
    idempotency_key: str | None = strawberry.field(
        description="The key a retried deploy sends to get this deployment back."
    )
    dependencies: list[str] = strawberry.field(
        description="Applications that had to be HEALTHY before the rollout."
    )
    cancel_requested_at: datetime | None = strawberry.field(
        description="When a cancel was asked of this running deployment."
    )
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    record: strawberry.Private[DeploymentRecord]
    base_url: strawberry.Private[str]

    @property
    def key(self) -> DeploymentRef:
        """What the batched loads of its steps, services and results are keyed by."""
        return DeploymentRef(self.environment, self.number)

    @strawberry.field(
        name="rolloutOptions",
        description="How it was asked to roll out: rollbackOnFailure, rollingUpdate,"
        " canaryPeriod, healthCheck, preDeployHooks, postDeployHooks.",
    )
    def rollout_document(self) -> JSON | None:
        document: JSON | None = camel_keys(self.record.rollout_options)
        return document

    @strawberry.field(description="Whether a failed rollout puts the last good deployment back.")
    def rollback_on_failure(self) -> bool:
        options = self.record.rollout_options or {}
        return bool(options.get("rollback_on_failure", True))

    @strawberry.field(description="A rollback: the deployment that ran when it was asked for.")
    async def rollback_of(self, info: Info) -> Deployment | None:
        return await linked_deployment(info, self.environment, self.record.rollback_of_id)

    @strawberry.field(
        description="The earlier deployment whose stack this one put back: a rollback's"
        " target, or what a failed deployment's automatic rollback restored."
    )
    async def rollback_to(self, info: Info) -> Deployment | None:
        return await linked_deployment(info, self.environment, self.record.rollback_to_id)

    @strawberry.field(description="The raw log as plain text.")
    def logs_url(self) -> str:
        return f"{self.base_url}/deployments/{self.number}/logs"

    @strawberry.field(description="Seconds from start to finish (so far, while it runs).")
    def duration(self) -> float | None:
        return seconds_between(self.started_at, self.finished_at)

    @strawberry.field
    async def steps(self, info: Info) -> list[DeploymentStep]:
        steps = await info.context.steps.load(self.key)
        return [DeploymentStep.from_record(step) for step in steps]

    @strawberry.field(description="Per-service outcome: image digest, replicas, nodes.")
    async def services(self, info: Info) -> list[ServiceRollout]:
        services = await info.context.service_rollouts.load(self.key)
        return [ServiceRollout.from_record(service) for service in services]

    @strawberry.field(description="The log, oldest first; `after` is a cursor from an edge.")
    async def logs(
        self, info: Info, first: int = 100, after: str | None = None
    ) -> LogLineConnection:
        if not 1 <= first <= 1000:
            raise PublicError("first must be between 1 and 1000", ErrorCode.INVALID_INPUT.value)
        try:
            after_seq = decode_cursor(after) if after else 0
        except InvalidId as exc:
            raise PublicError(str(exc), ErrorCode.INVALID_INPUT.value) from exc
        found = await info.context.backend.log_lines(self.key, after=after_seq, first=first + 1)
        more = len(found) > first
        lines = [LogLine.from_record(line) for line in found[:first]]
        edges = [LogLineEdge(cursor=encode_cursor(line.sequence), node=line) for line in lines]
        return LogLineConnection(
            edges=edges,
            nodes=lines,
            page_info=PageInfo(
                has_next_page=more,
                has_previous_page=after_seq > 0,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            deployment=self.key,
        )

    @strawberry.field(description="Hosts it went to: recorded ones and its services' nodes.")
    async def hosts(self, info: Info) -> list[str]:
        services = await info.context.service_rollouts.load(self.key)
        nodes = (node for service in services for node in service.nodes)
        return list(dict.fromkeys([*self.record.hosts, *nodes]))

    @strawberry.field(description="Results attached by an external runner, oldest first.")
    async def results(self, info: Info) -> list[DeploymentResult]:
        results = await info.context.deployment_results.load(self.key)
        return [DeploymentResult.from_record(result) for result in results]

    @strawberry.field(description="The release a successful deployment published or matched.")
    async def release(self, info: Info) -> Release | None:
        release_id = self.record.release_id
        if release_id is None:
            return None
        found = await info.context.releases.load(ReleaseRef(self.environment, release_id))
        return Release.from_record(found) if found else None

    @classmethod
    def from_record(cls, record: DeploymentRecord, base_url: str) -> Deployment:
        """Built without the dataclass constructor: lists of 50 are the hot path."""
        obj = cls.__new__(cls)
        fields = obj.__dict__
        fields.update(record.__dict__)
        fields["id"] = strawberry.ID(encode_id("Deployment", record.environment, record.id))
        fields["number"] = record.id
        fields["record"] = record
        fields["base_url"] = base_url
        return obj


async def linked_deployment(info: Info, environment: str, number: int | None) -> Deployment | None:
    """A deployment another object points at (loaded in one batch per request)."""
    if number is None:
        return None
    found = await info.context.deployments.load(DeploymentRef(environment, number))
    return Deployment.from_record(found, info.context.base_url) if found else None


@strawberry.type
class DeploymentEdge:
    cursor: str
    node: Deployment


@strawberry.type
class DeploymentConnection:
    edges: list[DeploymentEdge]
    nodes: list[Deployment]
    page_info: PageInfo
    filter: strawberry.Private[filters.DeploymentFilter | None]

    @strawberry.field(description="All deployments matching the filter (counted only if asked).")
    async def total_count(self, info: Info) -> int:
        return await info.context.backend.count_deployments(self.filter)


@strawberry.input(description="Every field narrows the result; lists match any of their values.")
class DeploymentFilter:
    environments: list[str] | None = None
    applications: list[str] | None = None
    repository: str | None = strawberry.field(
        default=None,
        description="Repository URL, exact, or a glob (`*` any run, `?` one character).",
    )
    commit_sha: str | None = strawberry.field(default=None, description="A prefix of the sha.")
    refs: list[str] | None = None
    states: list[DeploymentState] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    providers: list[WebhookProvider] | None = strawberry.field(
        default=None, description="Made by these providers' webhooks."
    )
    provider_repository: str | None = strawberry.field(
        default=None, description="owner/name as the provider names the repository."
    )

    def to_core(self) -> filters.DeploymentFilter:
        return filters.DeploymentFilter(
            environments=self.environments,
            applications=self.applications,
            repository=self.repository,
            commit_sha=self.commit_sha,
            refs=self.refs,
            states=list(self.states) if self.states else None,
            created_after=self.created_after,
            created_before=self.created_before,
            providers=[p.value for p in self.providers] if self.providers else None,
            provider_repository=self.provider_repository,
        )


@strawberry.input
class DeploymentOrder:
    field: DeploymentOrderField = DeploymentOrderField.CREATED_AT
    direction: OrderDirection = OrderDirection.DESC


@strawberry.input(description="Deploy a git commit (repositoryUrl + commitSha or ref) or an image.")
class DeployInput:
    repository_url: str | None = strawberry.field(
        default=None, description="git://, https://, ssh:// URL or a path on the server."
    )
    commit_sha: str | None = strawberry.field(default=None, description="Full or abbreviated sha.")
    ref: str | None = strawberry.field(
        default=None, description="Branch or tag, resolved to its sha when the request arrives."
    )
    application: str | None = strawberry.field(
        default=None, description="Defaults to the repository (or image) name."
    )
    environment: str | None = strawberry.field(
        default=None, description="Defaults to this instance's environment; no other is accepted."
    )
    stack_file: str | None = strawberry.field(
        default=None,
        description="Defaults to docker-compose.stack.yml (relative to workingDirectory).",
    )
    working_directory: str | None = strawberry.field(
        default=None,
        description="A subdirectory of the repository (a monorepo's project): the stack file"
        " and the build contexts are relative to it.",
    )
    version: str | None = strawberry.field(
        default=None, description="Defaults to a tag at the commit, else the short sha."
    )
    description: str | None = None
    references: list[str] | None = strawberry.field(
        default=None, description="Tickets or other external references."
    )
    image: str | None = strawberry.field(
        default=None, description="Deploy this prebuilt image (no git) to one service."
    )
    service: str | None = strawberry.field(
        default=None, description="The service an image deploy updates; defaults to the app name."
    )
    strategy: DeploymentStrategy = DeploymentStrategy.ROLLING
    queue: bool = strawberry.field(
        default=False,
        description="Wait behind a deployment under way instead of failing with"
        " DEPLOYMENT_IN_PROGRESS; a newer queued request cancels an older queued one.",
    )
    dependencies: list[str] | None = strawberry.field(
        default=None,
        description="Applications that must be HEALTHY in this environment first"
        " (else DEPENDENCY_FAILED); checked again just before the rollout.",
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="A retry with the same key gets the same deployment back; the same key"
        " with a different request is IDEMPOTENCY_KEY_REUSED.",
    )
    rollback_on_failure: bool = strawberry.field(
        default=True,
        description="When the rollout fails to converge or its health checks fail, put the"
        " whole stack back to the last good deployment (ROLLED_BACK); false: FAILURE, as is.",
    )
    rolling_update: RollingUpdateInput | None = strawberry.field(
        default=None, description="Update settings of ROLLING (and of CANARY after the canary)."
    )
    canary_period: float | None = strawberry.field(
        default=None, description="CANARY: seconds the canary task must run healthy (10)."
    )
    health_check_url: str | None = strawberry.field(
        default=None,
        description="Polled after the rollout: an http(s) URL, or a path on the stack's"
        " published port on 127.0.0.1.",
    )
    health_check: HealthCheckInput | None = strawberry.field(
        default=None, description="Timeout, interval and retries of healthCheckUrl."
    )
    pre_deploy_hooks: list[DeployHookInput] | None = strawberry.field(
        default=None, description="Run in the new image before any service changes."
    )
    post_deploy_hooks: list[DeployHookInput] | None = strawberry.field(
        default=None, description="Run in the new image after the rollout is healthy."
    )
    client_mutation_id: str | None = None

    def to_core(self, original: dict[str, Any]) -> DeployRequest:
        return DeployRequest(
            repository_url=self.repository_url,
            commit_sha=self.commit_sha,
            ref=self.ref,
            application=self.application,
            environment=self.environment,
            stack_file=self.stack_file,
            working_directory=self.working_directory,
            version=self.version,
            description=self.description,
            references=list(self.references or []),
            image=self.image,
            service=self.service,
            strategy=self.strategy,
            original_request=original,
            queue=self.queue,
            dependencies=list(self.dependencies or []),
            idempotency_key=self.idempotency_key,
            rollout=rollout_options(
                rollback_on_failure=self.rollback_on_failure,
                rolling_update=self.rolling_update,
                canary_period=self.canary_period,
                health_check_url=self.health_check_url,
                health_check=self.health_check,
                pre_deploy_hooks=self.pre_deploy_hooks,
                post_deploy_hooks=self.post_deploy_hooks,
            ),
        )


@strawberry.type
class DeployPayload:
    deployment: Deployment | None
    user_errors: list[UserError]
    client_mutation_id: str | None


DeploymentId = Annotated[
    strawberry.ID, strawberry.argument(description="A global ID, or the deployment's number.")
]
