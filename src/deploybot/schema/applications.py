"""GraphQL types of an application's status and health report (seed 002)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from deploybot import records
from deploybot.schema.context import Info
from deploybot.schema.deployments import Deployment, linked_deployment
from deploybot.schema.enums import ApplicationState, Health

ApplicationEventType = strawberry.enum(records.EventType, name="ApplicationEventType")


@strawberry.type(description="Replica counts summed over the application's services.")
class Replicas:
    desired: int
    running: int
    ready: int = strawberry.field(description="Running, and passing its healthcheck if any.")
    updated: int = strawberry.field(description="Running the service's current image.")

    @classmethod
    def of(cls, replicas: records.Replicas) -> Replicas:
        return cls(
            desired=replicas.desired,
            running=replicas.running,
            ready=replicas.ready,
            updated=replicas.updated,
        )


@strawberry.type(description="A deployment's state change or a Swarm task event.")
class ApplicationEvent:
    timestamp: datetime
    type: ApplicationEventType  # type: ignore[valid-type]
    message: str
    source: str = strawberry.field(description="`deployment #N`, or the task (`web.1`).")


@strawberry.type(description="One check of a component: a healthcheck run or a task's state.")
class HealthCheck:
    name: str
    status: Health
    message: str | None
    duration: float | None = strawberry.field(description="Seconds the check took.")
    last_run: datetime | None


@strawberry.type(description="One service of the stack as the Swarm reports it now.")
class HealthComponent:
    name: str
    swarm_name: str
    status: Health
    message: str
    image: str | None
    replicas: Replicas
    update_state: str | None = strawberry.field(description="Swarm's UpdateStatus.State.")
    checks: list[HealthCheck]


@strawberry.type(description="The application's health, read live from the Swarm.")
class HealthReport:
    overall: Health
    components: list[HealthComponent]
    last_check: datetime
    message: str


def _component(service: records.LiveService) -> HealthComponent:
    return HealthComponent(
        name=service.name,
        swarm_name=service.swarm_name,
        status=service.health,
        message=service.message,
        image=service.image,
        replicas=Replicas.of(service.replicas),
        update_state=service.update_state,
        checks=[
            HealthCheck(
                name=c.name,
                status=c.status,
                message=c.message,
                duration=c.duration,
                last_run=c.last_run,
            )
            for c in service.checks
        ],
    )


@strawberry.type(description="An application on this environment: what runs and how it is.")
class Application:
    name: str
    environment: str
    state: ApplicationState
    health: Health
    replicas: Replicas
    current_version: str | None
    repository_url: str | None
    stack_file: str | None
    configuration: JSON = strawberry.field(description="Source and live settings per service.")
    events: list[ApplicationEvent] = strawberry.field(description="Newest first.")
    health_report: HealthReport
    last_updated: datetime | None
    current_deployment_id: strawberry.Private[int | None]

    @strawberry.field(description="The deployment that put the current version here.")
    async def current_deployment(self, info: Info) -> Deployment | None:
        return await linked_deployment(info, self.environment, self.current_deployment_id)

    @classmethod
    def of(cls, status: records.ApplicationStatus) -> Application:
        report = status.report
        return cls(
            name=status.name,
            environment=status.environment,
            state=status.state,
            health=status.health,
            replicas=Replicas.of(status.replicas),
            current_version=status.current_version,
            repository_url=status.repository_url,
            stack_file=status.stack_file,
            configuration=JSON(status.configuration),
            events=[
                ApplicationEvent(
                    timestamp=e.timestamp, type=e.type, message=e.message, source=e.source
                )
                for e in status.events
            ],
            health_report=HealthReport(
                overall=report.overall,
                components=[_component(s) for s in report.components],
                last_check=report.last_check,
                message=report.message,
            ),
            last_updated=status.last_updated,
            current_deployment_id=status.current_deployment_id,
        )
