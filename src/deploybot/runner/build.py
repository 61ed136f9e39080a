"""Build a service's image from a commit's tree and push it to the registry.

The build context is the commit's tree (no checkout): a tar made by the mirror
cache. Images are named `<registry>/<application>/<service>:<version>` and,
once pushed, deployed by digest so that no node ever asks another registry.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from aiodocker.exceptions import DockerError

from deploybot.domain import LogStream
from deploybot.runner.git import MirrorCache
from deploybot.runner.stack import BuildSpec
from deploybot.runner.swarm import Swarm

LogFn = Callable[[str, LogStream], None]

_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


class BuildFailed(Exception):
    pass


class PushFailed(Exception):
    pass


def image_repository(registry: str | None, application: str, service: str) -> str:
    prefix = registry.rstrip("/") if registry else "deploybot"
    return f"{prefix}/{application}/{service}"


def image_tag(version: str) -> str:
    """A Docker tag from a version: `[A-Za-z0-9_.-]`, at most 128 characters."""
    tag = _TAG_BAD.sub("-", version).lstrip(".-") or "latest"
    return tag[:128]


async def build_image(
    swarm: Swarm,
    mirrors: MirrorCache,
    *,
    repository_url: str,
    sha: str,
    build: BuildSpec,
    image: str,
    labels: dict[str, str],
    log: LogFn,
) -> str:
    """Build `image` (repository:tag) for one service; returns the image id."""
    context = await asyncio.to_thread(mirrors.tree_tar, repository_url, sha, build.context)
    image_id: str | None = None
    error: str | None = None
    try:
        async for message in swarm.build(
            context,
            tag=image,
            dockerfile=build.dockerfile,
            buildargs=build.args,
            target=build.target,
            labels=labels,
        ):
            if "stream" in message:
                text = message["stream"].rstrip("\n")
                if text.strip():
                    log(text, LogStream.STDOUT)
            if "aux" in message and isinstance(message["aux"], dict):
                image_id = message["aux"].get("ID", image_id)
            if "error" in message or "errorDetail" in message:
                detail = message.get("errorDetail") or {}
                error = detail.get("message") or message.get("error") or "build failed"
                log(error, LogStream.STDERR)
    except DockerError as exc:
        error = str(exc.message)
        log(error, LogStream.STDERR)
    if error is not None:
        raise BuildFailed(f"build of service {build.service} failed: {error}")
    if image_id is None:
        inspected = await swarm.image(image)
        if inspected is None:
            raise BuildFailed(f"build of service {build.service} produced no image")
        image_id = str(inspected["Id"])
    return image_id


async def push_image(swarm: Swarm, repository: str, tag: str, log: LogFn) -> str:
    """Push and return the manifest digest the registry now serves for it."""
    digest: str | None = None
    last_status = ""
    try:
        async for message in swarm.push(repository, tag):
            aux = message.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
            status = message.get("status")
            if status and status != last_status and "id" not in message:
                log(status, LogStream.STDOUT)
                last_status = status
            if "error" in message:
                raise PushFailed(f"push of {repository}:{tag} failed: {message['error']}")
    except DockerError as exc:
        raise PushFailed(f"push of {repository}:{tag} failed: {exc.message}") from exc
    if digest is None:
        raise PushFailed(f"push of {repository}:{tag} reported no digest")
    return digest
