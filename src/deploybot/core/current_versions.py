"""What version of an application runs where (seed 004: "current deployed version of a
package"), per environment and per service, read from the deployment history.

The current deployment of an application on an environment is its SUCCESS one
(a newer success turns the previous INACTIVE). A service's version comes from the
newest successful deployment that rolled it out: an image deploy or a recorded
deployment may change one service and leave the others, while a git deployment
replaces the whole stack, so nothing older than the newest git deployment counts.
"""

from __future__ import annotations

from sqlalchemy import select

from deploybot.core.history import services_for
from deploybot.db.engine import Database
from deploybot.db.models import deployment_table
from deploybot.domain import DeploymentState, DeploymentTrigger
from deploybot.records import DeploymentRecord, EnvironmentVersion, ServiceVersion

#: How far back per environment the services of partial deployments are looked for.
HISTORY_DEPTH = 200


def _replaces_stack(row: DeploymentRecord) -> bool:
    return bool(
        row.repository_url and not row.image and row.trigger is not DeploymentTrigger.EXTERNAL
    )


async def current_versions(
    db: Database, application: str, environment: str | None = None
) -> list[EnvironmentVersion]:
    c = deployment_table.c
    where = [c.application == application]
    if environment is not None:
        where.append(c.environment == environment)
    async with db.connection() as connection:
        stored = list(
            (
                await connection.execute(
                    select(deployment_table).where(*where, c.state == DeploymentState.SUCCESS)
                )
            ).all()
        )
        stored += (
            await connection.execute(
                select(deployment_table)
                .where(*where, c.state == DeploymentState.INACTIVE)
                .order_by(c.id.desc())
                .limit(HISTORY_DEPTH)
            )
        ).all()
    rows = [DeploymentRecord.of(row._mapping) for row in stored]
    by_environment: dict[str, list[DeploymentRecord]] = {}
    for row in rows:
        by_environment.setdefault(row.environment, []).append(row)
    chains: dict[str, list[DeploymentRecord]] = {}
    for env, history in sorted(by_environment.items()):
        current = next((r for r in history if r.state is DeploymentState.SUCCESS), None)
        if current is None:
            continue
        # Newest first by when they finished; the current one leads, older successes follow.
        older = sorted(
            (r for r in history if r.id != current.id),
            key=lambda r: (r.finished_at is not None, r.finished_at, r.id),
            reverse=True,
        )
        chain = [current]
        if not _replaces_stack(current):
            for row in older[:HISTORY_DEPTH]:
                chain.append(row)
                if _replaces_stack(row):
                    break
        chains[env] = chain
    rollouts = await services_for(db, [int(r.id) for chain in chains.values() for r in chain])
    found: list[EnvironmentVersion] = []
    for env, chain in chains.items():
        current = chain[0]
        services: dict[str, ServiceVersion] = {}
        for row in chain:
            for rollout in rollouts[int(row.id)]:
                if rollout.service in services:
                    continue
                services[rollout.service] = ServiceVersion(
                    service=rollout.service,
                    version=rollout.version or row.version,
                    image=rollout.image,
                    digest=rollout.digest,
                    nodes=list(rollout.nodes or []),
                    deployment_id=int(row.id),
                    deployed_at=rollout.finished_at or row.finished_at,
                )
        found.append(
            EnvironmentVersion(
                application=application,
                environment=env,
                version=current.version,
                deployment_id=int(current.id),
                deployed_at=current.finished_at,
                services=sorted(services.values(), key=lambda s: s.service),
            )
        )
    return found
