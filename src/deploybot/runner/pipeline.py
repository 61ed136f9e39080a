"""Execute one deployment as recorded steps: fetch, build, push, rollout, converge.

Failures are classified where they happen: the deployment's own fault (build
error, invalid stack, tasks failing, timeout) ends in FAILURE; infrastructure
(Docker unreachable) in ERROR with DOCKER_UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from deploybot.config import Settings
from deploybot.core import history, lifecycle, queue
from deploybot.core.applications import check_dependencies
from deploybot.core.logs import LogWriter
from deploybot.db.engine import Database
from deploybot.domain import (
    DeploymentState,
    DeploymentStrategy,
    DeploymentTrigger,
    LogSource,
    LogStream,
    StepName,
    StepStatus,
)
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.events.bus import EventBus
from deploybot.inputs import RolloutOptions
from deploybot.records import DeploymentRecord
from deploybot.runner.build import (
    BuildFailed,
    PushFailed,
    build_image,
    image_repository,
    image_tag,
    push_image,
)
from deploybot.runner.cancellation import CancelWatch, DeploymentCancelled
from deploybot.runner.converge import (
    ConvergeFailed,
    ConvergeTimeout,
    ServiceWatch,
    snapshot_tasks,
    wait_converged,
)
from deploybot.runner.git import GitError, MirrorCache, ResolvedCommit
from deploybot.runner.phases import (
    canary_step,
    green_step,
    health_step,
    hooks_step,
    remove_services,
    stop_old_tasks,
)
from deploybot.runner.preflight import load_stack, stack_env
from deploybot.runner.releases import publish_release_of
from deploybot.runner.restore import roll_back_on_failure, run_rollback, stop_following
from deploybot.runner.stack import (
    NetworkSpec,
    StackFile,
    StackFileError,
    network_specs,
    service_specs,
    single_service_stack,
)
from deploybot.runner.status import SwarmStatus
from deploybot.runner.strategies import with_strategy
from deploybot.runner.swarm import DockerUnavailable, Swarm, image_of
from deploybot.times import utcnow

logger = logging.getLogger(__name__)


class StepFailure(Exception):
    """A step failed in a way the deployment is to blame for (or, with ERROR, the platform)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        state: DeploymentState = DeploymentState.FAILURE,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.state = state


@dataclass
class RunnerContext:
    db: Database
    bus: EventBus
    settings: Settings
    mirrors: MirrorCache


@dataclass
class DeploymentRun:
    ctx: RunnerContext
    record: DeploymentRecord
    swarm: Swarm
    log: LogWriter
    images: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    swarm_changed: bool = False
    cancel: CancelWatch | None = None
    canaries: list[str] = field(default_factory=list)
    """Temporary services beside the stack (a canary, a green version): removed at the end."""

    @property
    def id(self) -> int:
        return int(self.record.id)

    def say(self, text: str, stream: LogStream = LogStream.STDOUT) -> None:
        self.log.write(text, source=LogSource.SYSTEM, stream=stream)

    @asynccontextmanager
    async def step(self, name: StepName) -> AsyncIterator[dict[str, str]]:
        """Record a step's start, end and outcome; `result["message"]` becomes its message."""
        result: dict[str, str] = {}
        if self.cancel is not None:
            # The rollout sends the whole stack: a cancel waits for it, never half of it.
            self.cancel.before(name.value, interruptible=name is not StepName.ROLLOUT)
        started = time.monotonic()
        self.say(f"==> {name.value}")
        await lifecycle.set_step(self.ctx.db, self.id, name, StepStatus.RUNNING, bus=self.ctx.bus)
        try:
            yield result
        except BaseException as exc:
            if self.cancel is not None:
                self.cancel.after()
            stopped = isinstance(exc, asyncio.CancelledError | DeploymentCancelled)
            if stopped and self.cancel is not None and self.cancel.requested:
                self.say(f"{name.value} cancelled", LogStream.STDERR)
                await lifecycle.set_step(
                    self.ctx.db, self.id, name, StepStatus.CANCELLED, error="cancelled"
                )
                raise
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.say(f"{name.value} failed: {message}", LogStream.STDERR)
            await lifecycle.set_step(
                self.ctx.db, self.id, name, StepStatus.FAILED, error=message, bus=self.ctx.bus
            )
            raise
        took = time.monotonic() - started
        self.say(f"{name.value} done in {took:.1f}s")
        await lifecycle.set_step(
            self.ctx.db,
            self.id,
            name,
            StepStatus.COMPLETED,
            message=result.get("message"),
            bus=self.ctx.bus,
        )
        if self.cancel is not None:
            self.cancel.after()

    # --- git deployments ------------------------------------------------------------------------

    async def run_git(self) -> None:
        record = self.record
        url = record.repository_url
        # A git deployment was admitted with these (core.requests.inspect_source).
        assert url is not None and record.stack_file is not None and record.commit_sha is not None
        async with self.step(StepName.FETCH) as result:
            try:
                commit = await asyncio.to_thread(
                    self.ctx.mirrors.resolve, url, sha=record.commit_sha, ref=None
                )
                stack = await asyncio.to_thread(
                    load_stack,
                    self.ctx.mirrors,
                    url,
                    commit,
                    record.stack_file,
                    application=record.application,
                    env=self._env(commit),
                )
            except GitError as exc:
                raise StepFailure(ErrorCode.ARTIFACT_NOT_FOUND, exc.message) from exc
            except StackFileError as exc:
                raise StepFailure(ErrorCode.INVALID_DEPLOYMENT_SPEC, str(exc)) from exc
            result["message"] = f"{commit.short_sha} {commit.message}".strip()
            self.say(f"fetched {url} at {commit.sha}: {commit.message}")
            self.say(f"stack {stack.filename}: services {', '.join(sorted(stack.services))}")

        if stack.builds:
            await self._build(url, commit, stack)
        await self._rollout(stack)

    def _env(self, commit: ResolvedCommit) -> dict[str, str]:
        return stack_env(
            application=self.record.application,
            environment=self.record.environment,
            version=self.record.version or "",
            commit=commit,
        )

    async def _build(self, url: str, commit: ResolvedCommit, stack: StackFile) -> None:
        registry = self.ctx.settings.registry
        tag = image_tag(self.record.version or "")
        labels = {
            "com.deploybot.application": self.record.application,
            "com.deploybot.commit": commit.sha,
            "com.deploybot.deployment": str(self.id),
        }
        async with self.step(StepName.BUILD) as result:
            for service, build in sorted(stack.builds.items()):
                repository = image_repository(registry, self.record.application, service)

                def log(text: str, stream: LogStream, service: str = service) -> None:
                    self.log.write(text, source=LogSource.BUILD, stream=stream, source_name=service)

                try:
                    image_id = await build_image(
                        self.swarm,
                        self.ctx.mirrors,
                        repository_url=url,
                        sha=commit.sha,
                        build=build,
                        image=f"{repository}:{tag}",
                        labels=labels,
                        log=log,
                    )
                except BuildFailed as exc:
                    raise StepFailure(ErrorCode.BUILD_FAILED, str(exc)) from exc
                except GitError as exc:
                    raise StepFailure(ErrorCode.INVALID_DEPLOYMENT_SPEC, exc.message) from exc
                self.images[service] = f"{repository}:{tag}"
                self.digests[service] = image_id
                await lifecycle.save_service_rollout(
                    self.ctx.db,
                    self.id,
                    service,
                    image=f"{repository}:{tag}",
                    digest=image_id,
                    version=self.record.version,
                )
            result["message"] = f"built {len(stack.builds)} image(s) tagged {tag}"
        if not registry:
            return
        async with self.step(StepName.PUSH) as result:
            for service in sorted(stack.builds):
                repository = image_repository(registry, self.record.application, service)

                def log(text: str, stream: LogStream, service: str = service) -> None:
                    self.log.write(text, source=LogSource.BUILD, stream=stream, source_name=service)

                try:
                    digest = await push_image(self.swarm, repository, tag, log)
                except PushFailed as exc:
                    raise StepFailure(
                        ErrorCode.DOCKER_UNAVAILABLE, str(exc), state=DeploymentState.ERROR
                    ) from exc
                self.images[service] = f"{repository}:{tag}@{digest}"
                self.digests[service] = digest
                self.say(f"pushed {repository}:{tag} {digest}")
                await lifecycle.save_service_rollout(
                    self.ctx.db, self.id, service, image=self.images[service], digest=digest
                )
            result["message"] = f"pushed {len(stack.builds)} image(s) to {registry}"

    # --- prebuilt image deployments -------------------------------------------------------------

    async def run_image(self) -> None:
        record = self.record
        service = record.service or record.application
        image = record.image
        assert image is not None  # an image deployment was admitted with it
        async with self.step(StepName.FETCH) as result:
            self.images[service] = image
            digest = image.partition("@")[2]
            if digest:
                self.digests[service] = digest
            result["message"] = image
            self.say(f"image {image}")
        stack = single_service_stack(service)
        existing = await self.swarm.find_service(f"{record.application}_{service}")
        template = None
        if existing is not None:
            template = copy.deepcopy(existing["Spec"])
            template["TaskTemplate"]["ContainerSpec"]["Image"] = record.image
            labels = template.setdefault("Labels", {})
            labels.update(self._labels())
            labels["com.docker.stack.image"] = record.image
        await self._rollout(stack, replace={service: template} if template else None, prune=False)

    # --- rollout and converge -------------------------------------------------------------------

    async def save_watches(self, watches: list[ServiceWatch]) -> None:
        """Record what each watched service became (replicas, nodes, outcome)."""
        for watch in watches:
            await lifecycle.save_service_rollout(
                self.ctx.db,
                self.id,
                watch.service,
                replicas_desired=watch.desired,
                replicas_running=watch.running,
                replicas_healthy=watch.running,
                nodes=watch.nodes,
                state="converged" if watch.converged else "failed",
                error="; ".join(watch.errors[-3:]) or None,
                finished_at=utcnow(),
            )

    def _labels(self) -> dict[str, str]:
        return {
            "com.deploybot.application": self.record.application,
            "com.deploybot.environment": self.record.environment,
            "com.deploybot.deployment": str(self.id),
            "com.deploybot.version": self.record.version or "",
        }

    async def _rollout(
        self,
        stack: StackFile,
        *,
        replace: dict[str, dict[str, Any]] | None = None,
        prune: bool = True,
    ) -> None:
        namespace = self.record.application
        settings = self.ctx.settings
        options = RolloutOptions.from_json(self.record.rollout_options)
        strategy = self.record.strategy
        watches: list[ServiceWatch] = []
        followers: list[asyncio.Task[None]] = []
        await self._check_dependencies()  # again: they may have changed since the request
        try:
            specs = service_specs(
                stack,
                namespace,
                self.images,
                self._labels(),
                default_endpoint_mode=settings.endpoint_mode,
                default_publish_mode=settings.publish_mode,
            )
            networks = network_specs(stack, namespace)
        except StackFileError as exc:
            raise StepFailure(ErrorCode.INVALID_DEPLOYMENT_SPEC, str(exc)) from exc
        bodies = {
            spec.service: with_strategy(
                (replace or {}).get(spec.service) or spec.spec, strategy, options.rolling_update
            )
            for spec in specs
        }
        twins = (DeploymentStrategy.CANARY, DeploymentStrategy.BLUE_GREEN)
        if options.pre_deploy_hooks or strategy in twins:
            await self._networks(networks)
        if options.pre_deploy_hooks:
            await hooks_step(self, StepName.PRE_DEPLOY, options.pre_deploy_hooks, bodies)
        if strategy is DeploymentStrategy.CANARY:
            self.canaries = await canary_step(self, bodies, options.canary_period)
        elif strategy is DeploymentStrategy.BLUE_GREEN:
            self.canaries = await green_step(self, bodies)
        since = time.time() - 1
        async with self.step(StepName.ROLLOUT) as result:
            await self._networks(networks)
            if strategy is DeploymentStrategy.RECREATE:
                await stop_old_tasks(self, bodies)
            kept: set[str] = set()
            for spec in specs:
                body = bodies[spec.service]
                existing = await self.swarm.find_service(spec.name)
                known = await snapshot_tasks(self.swarm, existing["ID"]) if existing else set()
                service_id, created = await self._deploy_service(spec.name, body, networks)
                self.swarm_changed = True
                kept.add(service_id)
                self.say(f"{'created' if created else 'updated'} service {spec.name}")
                await lifecycle.save_service_rollout(
                    self.ctx.db,
                    self.id,
                    spec.service,
                    swarm_name=spec.name,
                    swarm_id=service_id,
                    image=self.images.get(spec.service) or image_of(body) or None,
                    digest=self.digests.get(spec.service),
                    version=self.record.version,
                    spec=body,
                    state="updating",
                    started_at=utcnow(),
                )
                watches.append(ServiceWatch(spec.service, service_id, known_tasks=known))
                followers.append(asyncio.create_task(self._follow(service_id, spec.service, since)))
            if prune:
                for service in await self.swarm.stack_services(namespace):
                    if service["ID"] not in kept:
                        await self.swarm.remove_service(service["ID"])
                        self.say(f"removed service {service['Spec']['Name']} (not in the stack)")
            result["message"] = f"{len(specs)} service(s) on stack {namespace}"

        try:
            async with self.step(StepName.CONVERGE) as result:
                try:
                    await asyncio.sleep(0.3)  # let Swarm register the update before judging it
                    await wait_converged(
                        self.swarm,
                        watches,
                        timeout=settings.converge_timeout,
                        stable=settings.converge_stable_seconds,
                        on_change=self._progress,
                    )
                except ConvergeFailed as exc:
                    raise StepFailure(ErrorCode.ROLLOUT_FAILED, str(exc)) from exc
                except ConvergeTimeout as exc:
                    raise StepFailure(ErrorCode.CONVERGE_TIMEOUT, str(exc)) from exc
                finally:
                    await self.save_watches(watches)
                result["message"] = ", ".join(
                    f"{w.service} {w.running}/{w.desired}" for w in watches
                )
        finally:
            await stop_following(followers)  # after the last lines of the new tasks
            await remove_services(self, self.canaries)
        if options.health_check:
            await health_step(self, options.health_check, bodies, watches)
        if options.post_deploy_hooks:
            await hooks_step(self, StepName.POST_DEPLOY, options.post_deploy_hooks, bodies)

    async def _check_dependencies(self) -> None:
        """Seed 002's dependencies, checked again just before the Swarm is changed."""
        dependencies = list(self.record.dependencies or [])
        if not dependencies:
            return
        try:
            await check_dependencies(
                self.ctx.db, SwarmStatus(self.ctx.settings), self.record.environment, dependencies
            )
        except DeploybotError as exc:
            raise StepFailure(exc.code, exc.message) from exc
        self.say(f"dependencies healthy: {', '.join(dependencies)}")

    async def _networks(self, networks: list[NetworkSpec], *, trust_listing: bool = True) -> None:
        for network in networks:
            if network.external:
                if not await self.swarm.network_exists(network.name):
                    raise StepFailure(
                        ErrorCode.INVALID_DEPLOYMENT_SPEC,
                        f"external network {network.name} does not exist",
                    )
                continue
            await self.swarm.ensure_network(network.name, network.spec, trust_listing=trust_listing)

    async def _deploy_service(
        self, name: str, body: dict[str, Any], networks: list[NetworkSpec]
    ) -> tuple[str, bool]:
        """Create or update one service. Swarm removes networks asynchronously: right after
        a stack was removed its network can still be listed, then vanish, and the service
        is refused with "network ... not found"; the network is made again and retried."""
        for attempt in range(4):
            try:
                return await self.swarm.deploy_service(body)
            except DockerUnavailable:
                raise
            except Exception as exc:
                message = str(getattr(exc, "message", None) or exc)
                if "network" in message and "not found" in message and attempt < 3:
                    self.say(f"{name}: {message}; making the network again")
                    await asyncio.sleep(0.5 * (attempt + 1))
                    await self._networks(networks, trust_listing=False)
                    continue
                raise StepFailure(
                    ErrorCode.ROLLOUT_FAILED, f"{name}: Docker refused the spec: {message}"
                ) from exc
        raise AssertionError("unreachable")

    async def _progress(self, watch: ServiceWatch) -> None:
        self.say(
            f"{watch.service}: {watch.running}/{watch.desired} running"
            + (f" (update {watch.update_state})" if watch.update_state else "")
            + (f"; task error: {watch.errors[-1]}" if watch.errors else "")
        )

    async def _follow(self, service_id: str, service: str, since: float) -> None:
        try:
            async for chunk in self.swarm.service_logs(service_id, since=since):
                for line in chunk.splitlines():
                    self.log.write(line, source=LogSource.SERVICE, source_name=service)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a log stream must never fail the deployment
            logger.debug("log stream of %s ended: %s", service, exc)


async def _heartbeat(ctx: RunnerContext, deployment_id: int, every: float = 30.0) -> None:
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):
            await queue.heartbeat(ctx.db, deployment_id)


async def execute(ctx: RunnerContext, deployment_id: int) -> DeploymentState:
    """Run a claimed deployment to its end and record the outcome."""
    record = await history.get_deployment(ctx.db, deployment_id)
    assert record is not None
    swarm = Swarm(ctx.settings.docker_host)
    state = DeploymentState.SUCCESS
    code: ErrorCode | None = None
    message: str | None = None
    beat = asyncio.create_task(_heartbeat(ctx, deployment_id))
    try:
        async with LogWriter(ctx.db, ctx.bus, deployment_id) as log:
            run = DeploymentRun(ctx, record, swarm, log, cancel=CancelWatch(ctx.db, deployment_id))
            run.say(
                f"deployment #{deployment_id} of {record.application} {record.version}"
                f" to {record.environment}"
            )
            assert run.cancel is not None
            try:
                if record.trigger is DeploymentTrigger.ROLLBACK:
                    work = run_rollback(run)
                elif record.image:
                    work = run.run_image()
                else:
                    work = run.run_git()
                await run.cancel.run(work)
            except DeploymentCancelled as exc:
                state, message = DeploymentState.CANCELLED, exc.message
            except StepFailure as exc:
                state, code, message = exc.state, exc.code, exc.message
                state, code, message = await roll_back_on_failure(run, state, code, message)
            except DockerUnavailable as exc:
                state, code = DeploymentState.ERROR, ErrorCode.DOCKER_UNAVAILABLE
                message = f"Docker is unavailable: {exc}"
            except Exception as exc:
                logger.exception("deployment %s failed unexpectedly", deployment_id)
                state, code = DeploymentState.ERROR, ErrorCode.INTERNAL_ERROR
                message = f"internal error: {type(exc).__name__}: {exc}"
            finally:
                with contextlib.suppress(Exception):
                    await remove_services(run, run.canaries)  # a rollout that failed early
                await swarm.close()
            if message:
                run.say(f"deployment {state.value.lower()}: {message}", LogStream.STDERR)
            else:
                run.say("deployment succeeded")
    finally:
        beat.cancel()
    if state is DeploymentState.SUCCESS:
        await publish_release_of(ctx.db, ctx.settings, ctx.mirrors, record)
    await lifecycle.finish_deployment(
        ctx.db,
        ctx.bus,
        deployment_id,
        state,
        error_code=code,
        error_message=message,
        swarm_changed=run.swarm_changed,
    )
    return state
