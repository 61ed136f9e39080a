"""GraphQL inputs and payloads of deployments made by other tools (seeds 001 and 004), and the
current-version view of an application."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from deploybot import records
from deploybot.inputs import RecordedService, RecordRequest
from deploybot.schema.common import UserError
from deploybot.schema.context import Info
from deploybot.schema.deployments import (
    Deployment,
    DeploymentId,
    DeploymentResult,
    ServiceRollout,
    linked_deployment,
)
from deploybot.schema.enums import DeploymentState

TIME = "RFC 3339; without an offset it is UTC."


@strawberry.input(description="One service (package) of a recorded deployment.")
class RecordedServiceInput:
    name: str
    version: str | None = strawberry.field(
        default=None, description="Defaults to the deployment's version."
    )
    image: str | None = None
    hosts: list[str] | None = strawberry.field(default=None, description="Where it went.")
    started_at: str | None = strawberry.field(default=None, description=TIME)
    finished_at: str | None = strawberry.field(default=None, description=TIME)
    duration: float | None = strawberry.field(
        default=None, description="Seconds; with one of the times it gives the other."
    )

    def to_core(self) -> RecordedService:
        return RecordedService(
            name=self.name,
            version=self.version,
            image=self.image,
            hosts=list(self.hosts or []),
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration=self.duration,
        )


@strawberry.input(
    description="A deployment another tool made. Nothing is required: without an application"
    " or a version it has none (null), and belongs to no application's current version."
)
class RecordDeploymentInput:
    application: str | None = None
    version: str | None = None
    environment: str | None = strawberry.field(
        default=None, description="Defaults to this instance's environment; no other is accepted."
    )
    state: DeploymentState = strawberry.field(
        default=DeploymentState.SUCCESS,
        description="SUCCESS unless told otherwise: a recording is usually after the fact; an"
        " outside runner records QUEUED or IN_PROGRESS and reports the rest.",
    )
    actor: str | None = strawberry.field(default=None, description="Who deployed.")
    team: str | None = strawberry.field(default=None, description="The team responsible.")
    notes: str | None = None
    references: list[str] | None = strawberry.field(
        default=None, description="Tickets or other external references."
    )
    hosts: list[str] | None = strawberry.field(default=None, description="Hosts deployed to.")
    platforms: list[str] | None = strawberry.field(
        default=None, description="Platforms the deployment was for (Sponge)."
    )
    services: list[RecordedServiceInput] | None = strawberry.field(
        default=None, description="Per-service (package) versions, hosts and durations."
    )
    repository_url: str | None = None
    ref: str | None = strawberry.field(
        default=None, description="Branch or tag; a branch names the release train."
    )
    commit_sha: str | None = None
    committed_at: str | None = strawberry.field(
        default=None, description=f"Commit time (lead time for changes). {TIME}"
    )
    started_at: str | None = strawberry.field(default=None, description=TIME)
    finished_at: str | None = strawberry.field(
        default=None, description=f"{TIME} A final state without it finished when recorded."
    )
    duration: float | None = strawberry.field(
        default=None, description="Seconds; with one of the times it gives the other."
    )
    provider: str | None = strawberry.field(
        default=None, description="The tool that deployed (jenkins, ansible, ...)."
    )
    client_mutation_id: str | None = None

    def to_core(self) -> RecordRequest:
        return RecordRequest(
            application=self.application,
            version=self.version,
            environment=self.environment,
            state=self.state,
            actor=self.actor,
            team=self.team,
            notes=self.notes,
            references=list(self.references or []),
            hosts=list(self.hosts or []),
            platforms=list(self.platforms or []),
            services=[s.to_core() for s in self.services or []],
            repository_url=self.repository_url,
            ref=self.ref,
            commit_sha=self.commit_sha,
            committed_at=self.committed_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration=self.duration,
            provider=self.provider,
        )


@strawberry.type
class RecordDeploymentPayload:
    deployment: Deployment | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input(description="An outside runner reports its deployment's new state.")
class ReportDeploymentStatusInput:
    id: DeploymentId
    state: DeploymentState
    message: str | None = strawberry.field(
        default=None, description="Logged; a FAILURE's or ERROR's becomes its errorMessage."
    )
    client_mutation_id: str | None = None


@strawberry.type
class ReportDeploymentStatusPayload:
    deployment: Deployment | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input(description="Attach a result (any JSON: text, an object) to a deployment.")
class AddDeploymentResultInput:
    id: DeploymentId
    result: JSON
    client_mutation_id: str | None = None


@strawberry.input(description="Services (packages) added to a recorded deployment afterwards.")
class AddDeploymentServicesInput:
    id: DeploymentId
    services: list[RecordedServiceInput]
    client_mutation_id: str | None = None


@strawberry.type
class AddDeploymentServicesPayload:
    deployment: Deployment | None
    services: list[ServiceRollout] | None = strawberry.field(
        description="All the deployment's services, the added ones included."
    )
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class AddDeploymentResultPayload:
    deployment: Deployment | None
    result: DeploymentResult | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type(description="The version one service of an application runs.")
class ServiceVersion:
    service: str
    version: str | None
    image: str | None
    digest: str | None
    hosts: list[str]
    deployed_at: datetime | None
    environment: strawberry.Private[str]
    deployment_number: strawberry.Private[int]

    @strawberry.field(description="The deployment that put this version there.")
    async def deployment(self, info: Info) -> Deployment | None:
        return await linked_deployment(info, self.environment, self.deployment_number)


@strawberry.type(description="The version an application runs on one environment.")
class CurrentVersion:
    application: str
    environment: str
    version: str | None
    deployed_at: datetime | None
    services: list[ServiceVersion]
    deployment_number: strawberry.Private[int]

    @strawberry.field(description="The current (SUCCESS) deployment.")
    async def deployment(self, info: Info) -> Deployment | None:
        return await linked_deployment(info, self.environment, self.deployment_number)

    @classmethod
    def from_record(cls, found: records.EnvironmentVersion) -> CurrentVersion:
        return cls(
            application=found.application,
            environment=found.environment,
            version=found.version,
            deployed_at=found.deployed_at,
            deployment_number=found.deployment_id,
            services=[
                ServiceVersion(
                    service=s.service,
                    version=s.version,
                    image=s.image,
                    digest=s.digest,
                    hosts=s.nodes,
                    deployed_at=s.deployed_at,
                    environment=found.environment,
                    deployment_number=s.deployment_id,
                )
                for s in found.services
            ],
        )
