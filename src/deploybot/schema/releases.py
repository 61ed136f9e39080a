"""GraphQL types and inputs of the release catalogue (seed 003)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from deploybot import filters
from deploybot.ids import encode_id
from deploybot.inputs import PublishRequest
from deploybot.records import ReleaseRecord
from deploybot.schema.common import Node, PageInfo, UserError
from deploybot.schema.context import Info
from deploybot.schema.enums import OrderDirection

if TYPE_CHECKING:
    from deploybot.schema.deployments import Deployment


@strawberry.type(description="A published version of a component on a release train.")
class Release(Node):
    id: strawberry.ID
    number: int = strawberry.field(description="Serial number of the release.")
    component: str = strawberry.field(description="What was released (an application).")
    train: str = strawberry.field(description="The release train (e.g. stable, beta).")
    version: str
    released_at: datetime = strawberry.field(description="When it was released, in UTC.")
    data: JSON = strawberry.field(description="Free data: notes, links, issues.")
    created_at: datetime = strawberry.field(description="When it was published here.")
    record: strawberry.Private[ReleaseRecord]

    @strawberry.field(description="The deployment that published it, if a deployment did.")
    async def deployment(
        self, info: Info
    ) -> Annotated[Deployment, strawberry.lazy("deploybot.schema.deployments")] | None:
        from deploybot.schema.deployments import linked_deployment  # imports this module

        return await linked_deployment(info, self.record.environment, self.record.deployment_id)

    @classmethod
    def from_record(cls, record: ReleaseRecord) -> Release:
        return cls(
            id=strawberry.ID(encode_id("Release", record.environment, record.id)),
            number=record.id,
            component=record.component,
            train=record.train,
            version=record.version,
            released_at=record.released_at,
            data=JSON(record.data),
            created_at=record.created_at,
            record=record,
        )


@strawberry.type
class ReleaseEdge:
    cursor: str
    node: Release


@strawberry.type
class ReleaseConnection:
    edges: list[ReleaseEdge]
    nodes: list[Release]
    page_info: PageInfo
    filter: strawberry.Private[filters.ReleaseFilter | None]

    @strawberry.field(description="All releases matching the filter.")
    async def total_count(self, info: Info) -> int:
        return await info.context.backend.count_releases(self.filter)


@strawberry.input(description="Every field narrows the result; lists match any of their values.")
class ReleaseFilter:
    components: list[str] | None = None
    trains: list[str] | None = None
    released_after: datetime | None = strawberry.field(
        default=None, description="Released at or after this time."
    )
    released_before: datetime | None = strawberry.field(
        default=None, description="Released before this time."
    )

    def to_core(self) -> filters.ReleaseFilter:
        return filters.ReleaseFilter(
            components=self.components,
            trains=self.trains,
            released_after=self.released_after,
            released_before=self.released_before,
        )


@strawberry.enum
class ReleaseOrderField(enum.Enum):
    RELEASED_AT = "RELEASED_AT"
    CREATED_AT = "CREATED_AT"


@strawberry.input
class ReleaseOrder:
    field: ReleaseOrderField = ReleaseOrderField.RELEASED_AT
    direction: OrderDirection = OrderDirection.DESC


@strawberry.enum(description="What makes a release the latest.")
class LatestReleaseBy(enum.Enum):
    RELEASED_AT = "RELEASED_AT"
    SEMANTIC_VERSION = "SEMANTIC_VERSION"


@strawberry.input(description="A new version of a component on a train (Deis' ComponentVersion).")
class PublishReleaseInput:
    component: str
    train: str
    version: str
    released_at: str = strawberry.field(
        description="RFC 3339 (2016-04-16T23:54:39Z, ...+07:00); without an offset it is UTC."
    )
    data: JSON | None = strawberry.field(
        default=None, description="A JSON object of release data; may be {} (the default)."
    )
    client_mutation_id: str | None = None

    def to_core(self) -> PublishRequest:
        return PublishRequest(
            component=self.component,
            train=self.train,
            version=self.version,
            released_at=self.released_at,
            data=self.data,
        )


@strawberry.type
class PublishReleasePayload:
    release: Release | None
    user_errors: list[UserError]
    client_mutation_id: str | None
