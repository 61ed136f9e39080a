"""Look at a deploy request's source before anything is written or changed.

This is the runner's half of `deploy`'s checks: the repository can be fetched,
the commit exists, the stack file is there and valid (or a Dockerfile stands in
for it), or the prebuilt image exists. The core turns each failure into a typed
user error, so a bad request never leaves a half-written deployment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from aiodocker.exceptions import DockerError

from deploybot.config import Settings
from deploybot.core import secrets
from deploybot.core.inspectors import DEFAULT_STACK_FILE, ImageInfo, SourceInfo
from deploybot.db.engine import Database
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.runner.git import GitCredentials, GitError, MirrorCache, ResolvedCommit
from deploybot.runner.stack import StackFile, StackFileError, parse_stack_file, single_service_stack
from deploybot.runner.stack.claims import stack_claims
from deploybot.runner.stack.file_objects import referenced_names, used_keys
from deploybot.runner.stack.platform import check_stack_on_swarm
from deploybot.runner.swarm import DockerUnavailable, Swarm

#: The stack file recorded for a repository that has only a Dockerfile.
DOCKERFILE = "Dockerfile"


def mirror_cache(settings: Settings) -> MirrorCache:
    credentials = GitCredentials(
        token=settings.git_token,
        username=settings.git_username,
        ssh_key_path=str(settings.git_ssh_key) if settings.git_ssh_key else None,
        ssh_passphrase=settings.git_ssh_passphrase,
    )
    return MirrorCache(settings.work_dir / "git", credentials)


def stack_env(
    *, application: str, environment: str, version: str, commit: ResolvedCommit
) -> dict[str, str]:
    """Variables a stack file may interpolate (`${DEPLOYBOT_VERSION}` and friends)."""
    return {
        "DEPLOYBOT_APPLICATION": application,
        "DEPLOYBOT_ENVIRONMENT": environment,
        "DEPLOYBOT_VERSION": version,
        "DEPLOYBOT_COMMIT_SHA": commit.sha,
        "DEPLOYBOT_REF": commit.ref or "",
    }


def default_version(commit: ResolvedCommit) -> str:
    return commit.tags[0] if commit.tags else commit.short_sha


def load_stack(
    mirrors: MirrorCache,
    url: str,
    commit: ResolvedCommit,
    stack_file: str,
    *,
    application: str,
    env: Mapping[str, str],
    working_directory: str | None = None,
) -> StackFile:
    """The commit's stack file; a lone Dockerfile deploys as one service named after the app.

    With a `working_directory` (a monorepo's project) the stack file, the lone Dockerfile
    and the build contexts are relative to that directory."""
    base = posixpath.normpath(working_directory) if working_directory else "."

    def at(path: str) -> str:
        return posixpath.normpath(posixpath.join(base, path))

    if stack_file == DOCKERFILE:
        return _rebased(single_service_stack(application), base)
    text = mirrors.read_file(url, commit.sha, at(stack_file))
    if text is None:
        if stack_file == DEFAULT_STACK_FILE and mirrors.read_file(url, commit.sha, at(DOCKERFILE)):
            return _rebased(single_service_stack(application), base)
        raise StackFileError(at(stack_file), None, f"not found at commit {commit.short_sha}")

    def read_file(path: str) -> bytes | None:
        """Env files and the files of configs and secrets: from the commit, never the disk."""
        return mirrors.read_file(url, commit.sha, at(path))

    stack = parse_stack_file(text.decode("utf-8", "replace"), stack_file, env, read_file)
    return _rebased(stack, base)


def missing_file_errors(stack: StackFile) -> list[DeploybotError]:
    """One INVALID_DEPLOYMENT_SPEC per file the stack needs that the commit lacks."""
    return [
        DeploybotError(
            ErrorCode.INVALID_DEPLOYMENT_SPEC,
            f"{stack.filename}: {key}: {message}",
            field="stackFile",
        )
        for key, message in stack.missing_files
    ]


async def kept_secret_errors(
    db: Database | None, environment: str, application: str, stack: StackFile
) -> list[DeploybotError]:
    """One INVALID_DEPLOYMENT_SPEC per kept secret the stack uses that is not set."""
    wanted = {
        obj.kept_secret: key
        for key, obj in stack.secrets.items()
        if obj.kept_secret is not None and key in used_keys(stack.services, "secret")
    }
    if db is None or not wanted:
        return []
    found = {r.name for r in await secrets.list_secrets(db, environment, application)}
    return [
        DeploybotError(
            ErrorCode.INVALID_DEPLOYMENT_SPEC,
            f"{stack.filename}: secrets.{key}: {application} has no kept secret {name!r}"
            f" on {environment} (set it with setSecret)",
            field="stackFile",
        )
        for name, key in sorted(wanted.items())
        if name not in found
    ]


def _rebased(stack: StackFile, base: str) -> StackFile:
    """The stack with its build contexts made relative to the repository root."""
    if base == ".":
        return stack
    builds = {
        name: dataclasses.replace(
            build, context=posixpath.normpath(posixpath.join(base, build.context))
        )
        for name, build in stack.builds.items()
    }
    return dataclasses.replace(stack, builds=builds)


def spec_error(exc: StackFileError) -> DeploybotError:
    return DeploybotError(ErrorCode.INVALID_DEPLOYMENT_SPEC, str(exc), field="stackFile")


class Preflight:
    """`SourceInspector` over the mirror cache and the Swarm's engine."""

    def __init__(
        self,
        settings: Settings,
        swarm: Swarm,
        mirrors: MirrorCache | None = None,
        db: Database | None = None,
    ) -> None:
        self.settings = settings
        self.swarm = swarm
        self.mirrors = mirrors or mirror_cache(settings)
        self.db = db
        """To check that the kept secrets a stack uses are set (not checked without it)."""

    async def inspect_git(
        self,
        repository_url: str,
        *,
        sha: str | None,
        ref: str | None,
        stack_file: str,
        application: str,
        working_directory: str | None = None,
    ) -> SourceInfo:
        try:
            commit = await asyncio.to_thread(self.mirrors.resolve, repository_url, sha=sha, ref=ref)
        except GitError as exc:
            field = "commitSha" if sha and "not found" in exc.message else "repositoryUrl"
            if ref and not sha and "not found" in exc.message:
                field = "ref"
            raise DeploybotError(ErrorCode.ARTIFACT_NOT_FOUND, exc.message, field=field) from exc
        version = default_version(commit)
        env = stack_env(
            application=application,
            environment=self.settings.environment,
            version=version,
            commit=commit,
        )
        try:
            stack = await asyncio.to_thread(
                load_stack,
                self.mirrors,
                repository_url,
                commit,
                stack_file,
                application=application,
                env=env,
                working_directory=working_directory,
            )
        except StackFileError as exc:
            raise spec_error(exc) from exc
        except GitError as exc:
            raise DeploybotError(ErrorCode.ARTIFACT_NOT_FOUND, exc.message) from exc
        missing = [
            s for s, d in stack.services.items() if s not in stack.builds and not d.get("image")
        ]
        if missing:
            raise DeploybotError(
                ErrorCode.INVALID_DEPLOYMENT_SPEC,
                f"{stack.filename}: services.{missing[0]}: needs `image` or `build`",
                field="stackFile",
            )
        errors, warnings = await check_stack_on_swarm(self.settings, self.swarm, stack, application)
        errors += missing_file_errors(stack)
        errors += await kept_secret_errors(self.db, self.settings.environment, application, stack)
        if errors:
            raise ValidationFailed(errors)
        return SourceInfo(
            commit_sha=commit.sha,
            ref=commit.ref,
            version=version,
            commit_message=commit.message,
            commit_author=commit.author,
            committed_at=commit.committed_at,
            stack_file=stack.filename,
            services=sorted(stack.services),
            builds=bool(stack.builds),
            warnings=(*stack.warnings, *warnings),
            claims=tuple(stack_claims(stack)),
        )

    async def inspect_image(self, image: str) -> ImageInfo:
        try:
            return await image_info(self.swarm, image)
        except DockerUnavailable as exc:
            raise DeploybotError(ErrorCode.DOCKER_UNAVAILABLE, str(exc)) from exc

    async def image_available(self, image: str) -> bool:
        """A rollback's image can still run: the node has it, or its registry does."""
        try:
            repo, tag, digest = split_image(image)
            for local in (image, f"{repo}@{digest}" if digest else None):
                if local and await self.swarm.image(local) is not None:
                    return True
            return bool(tag or digest) and await self.swarm.distribution(image) is not None
        except DockerUnavailable as exc:
            raise DeploybotError(ErrorCode.DOCKER_UNAVAILABLE, str(exc)) from exc
        except DockerError:  # a reference the engine can't parse can't run either
            return False

    async def missing_objects(self, specs: list[dict[str, Any]]) -> list[str]:
        try:
            missing = []
            for kind, name in sorted({n for spec in specs for n in referenced_names(spec)}):
                if await self.swarm.find_object(kind, name) is None:
                    missing.append(f"{kind} {name}")
            return missing
        except DockerUnavailable as exc:
            raise DeploybotError(ErrorCode.DOCKER_UNAVAILABLE, str(exc)) from exc


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """`repo[:tag][@digest]` → (repo, tag, digest); a registry port is not a tag."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = None
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest or None


_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
"""The Docker reference grammar (distribution/reference): what Docker would accept."""


def check_reference(image: str) -> None:
    """INVALID_INPUT for a string Docker would refuse as an image reference, before asking it."""
    if len(image) > 512 or not REFERENCE.fullmatch(image):
        raise DeploybotError(
            ErrorCode.INVALID_INPUT,
            f"not a valid image reference: {image[:100]!r}",
            field="image",
        )


async def image_info(swarm: Swarm, image: str) -> ImageInfo:
    """Pin an image reference to a digest: the registry's, else the local image's."""
    check_reference(image)
    repo, tag, digest = split_image(image)
    if digest:
        return ImageInfo(image=image, digest=digest, tag=tag)
    reference = f"{repo}:{tag or 'latest'}"
    descriptor = await swarm.distribution(reference)
    if descriptor and descriptor.get("Descriptor", {}).get("digest"):
        found = str(descriptor["Descriptor"]["digest"])
        return ImageInfo(image=f"{reference}@{found}", digest=found, tag=tag)
    local = await swarm.image(reference)
    if local is None:
        raise DeploybotError(
            ErrorCode.ARTIFACT_NOT_FOUND,
            f"image {reference} is neither in its registry nor on the Swarm node",
            field="image",
        )
    return ImageInfo(image=reference, digest=str(local["Id"]), tag=tag)
