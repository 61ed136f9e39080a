"""The release a successful deployment publishes: the runner's part is the git metadata
(which branch the deployed commit is on); the catalogue's rules are in `core.releases`."""

from __future__ import annotations

import asyncio
import logging

import pygit2

from deploybot.config import Settings
from deploybot.core import releases as core_releases
from deploybot.db.engine import Database
from deploybot.db.retry import retry_unavailable
from deploybot.records import DeploymentRecord
from deploybot.runner.git import MirrorCache

logger = logging.getLogger(__name__)


def deployed_branch(mirrors: MirrorCache, url: str, sha: str, ref: str | None) -> str | None:
    """The branch a commit was deployed from: the ref when it names a branch; for a tag or a
    bare sha, the default branch if it contains the commit, else the first branch that does."""
    path = mirrors.mirror_path(url)
    if not path.exists():
        return None
    repo = pygit2.Repository(str(path))
    if ref and repo.references.get(f"refs/heads/{ref.removeprefix('refs/heads/')}") is not None:
        return ref.removeprefix("refs/heads/")
    commit = pygit2.Oid(hex=sha)
    branches: list[str] = []
    head = repo.references.get("HEAD")
    try:
        default = head.resolve().name if head is not None else None
    except (KeyError, pygit2.GitError):
        default = None
    if default:
        branches.append(default)
    branches += sorted(
        name for name in repo.references if name.startswith("refs/heads/") and name != default
    )
    for name in branches:
        tip = repo.references[name].peel(pygit2.Commit).id
        if tip == commit or repo.descendant_of(tip, commit):
            return name.removeprefix("refs/heads/")
    return None


async def publish_release_of(
    db: Database, settings: Settings, mirrors: MirrorCache, record: DeploymentRecord
) -> None:
    """Publish (or link) the release of a successful deployment; never fails the deployment."""
    try:
        branch = None
        if record.repository_url and record.commit_sha:
            branch = await asyncio.to_thread(
                deployed_branch, mirrors, record.repository_url, record.commit_sha, record.ref
            )
        await retry_unavailable(
            lambda: core_releases.publish_deployment_release(
                db, settings, int(record.id), branch=branch
            ),
            what=f"deployment {record.id}: publishing its release",
        )
    except Exception:
        logger.exception("deployment %s: could not publish its release", record.id)
