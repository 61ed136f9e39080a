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
from collections.abc import Coroutine
from typing import Any

from deploybot.core import history, lifecycle, queue
from deploybot.core.applications import check_dependencies
from deploybot.core.logs import LogWriter
from deploybot.core.policy import image_violation, repository_violation, stack_violations
from deploybot.core.policy_store import current_policy
from deploybot.db.retry import retry_unavailable
from deploybot.domain import (
    DeploymentState,
    DeploymentStrategy,
    DeploymentTrigger,
    LogSource,
    LogStream,
    StepName,
)
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.inputs import RolloutOptions
from deploybot.runner import reconcile
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
from deploybot.runner.git import GitError, ResolvedCommit
from deploybot.runner.objects import plan_objects, prune_objects, with_object_ids
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
from deploybot.runner.restore import Outcome, roll_back_on_failure, run_rollback, stop_following
from deploybot.runner.run import DeploymentRun, HandedOver, RunnerContext, StepFailure
from deploybot.runner.stack import (
    StackFile,
    StackFileError,
    network_specs,
    service_specs,
    single_service_stack,
)
from deploybot.runner.stack.claims import stack_claims
from deploybot.runner.status import SwarmStatus
from deploybot.runner.strategies import with_strategy
from deploybot.runner.swarm import DockerUnavailable, image_of
from deploybot.times import utcnow

logger = logging.getLogger(__name__)


# --- git deployments ------------------------------------------------------------------------


async def run_git(run: DeploymentRun) -> None:
    record = run.record
    url = record.repository_url
    # A git deployment was admitted with these (core.requests.inspect_source).
    assert url is not None and record.stack_file is not None and record.commit_sha is not None
    async with run.step(StepName.FETCH) as result:
        await _check_policy(run, repository_url=url)  # before the repository is read
        try:
            commit = await asyncio.to_thread(
                run.ctx.mirrors.resolve, url, sha=record.commit_sha, ref=None
            )
            stack = await asyncio.to_thread(
                load_stack,
                run.ctx.mirrors,
                url,
                commit,
                record.stack_file,
                application=record.named_application,
                env=_env(run, commit),
                working_directory=record.working_directory,
            )
        except GitError as exc:
            raise StepFailure(ErrorCode.ARTIFACT_NOT_FOUND, exc.message) from exc
        except StackFileError as exc:
            raise StepFailure(ErrorCode.INVALID_DEPLOYMENT_SPEC, str(exc)) from exc
        if stack.missing_files:
            raise StepFailure(
                ErrorCode.INVALID_DEPLOYMENT_SPEC,
                "; ".join(f"{stack.filename}: {k}: {m}" for k, m in stack.missing_files),
            )
        result["message"] = f"{commit.short_sha} {commit.message}".strip()
        run.say(f"fetched {url} at {commit.sha}: {commit.message}")
        run.say(f"stack {stack.filename}: services {', '.join(sorted(stack.services))}")
        await _check_policy(run, stack=stack)

    if stack.builds:
        await _build(run, url, commit, stack)
    await _rollout(run, stack)


async def _check_policy(
    run: DeploymentRun,
    *,
    repository_url: str | None = None,
    stack: StackFile | None = None,
    image: str | None = None,
) -> None:
    """The deploy policy in force now (it may have been tightened since the request was
    admitted), held against what is about to run: before anything is built or changed."""
    policy = (
        await retry_unavailable(
            lambda: current_policy(run.ctx.db, run.ctx.settings),
            what=f"deployment {run.id}: reading the deploy policy",
        )
    ).policy
    errors = []
    if repository_url is not None:
        errors.append(repository_violation(policy, repository_url))
    if image is not None:
        errors.append(image_violation(policy, image))
    if stack is not None:
        errors += stack_violations(policy, stack.filename, stack_claims(stack))
    found = [e for e in errors if e is not None]
    if found:
        for error in found:
            run.say(f"refused by the deploy policy: {error.message}", LogStream.STDERR)
        raise StepFailure(ErrorCode.POLICY_VIOLATION, "; ".join(e.message for e in found))


def _env(run: DeploymentRun, commit: ResolvedCommit) -> dict[str, str]:
    return stack_env(
        application=run.record.named_application,
        environment=run.record.environment,
        version=run.record.version or "",
        commit=commit,
    )


async def _build(run: DeploymentRun, url: str, commit: ResolvedCommit, stack: StackFile) -> None:
    registry = run.ctx.settings.registry
    tag = image_tag(run.record.version or "")
    labels = {
        "com.deploybot.application": run.record.named_application,
        "com.deploybot.commit": commit.sha,
        "com.deploybot.deployment": str(run.id),
    }
    async with run.step(StepName.BUILD) as result:
        for service, build in sorted(stack.builds.items()):
            repository = image_repository(registry, run.record.named_application, service)

            def log(text: str, stream: LogStream, service: str = service) -> None:
                run.log.write(text, source=LogSource.BUILD, stream=stream, source_name=service)

            try:
                image_id = await build_image(
                    run.swarm,
                    run.ctx.mirrors,
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
            run.images[service] = f"{repository}:{tag}"
            run.digests[service] = image_id
            await run.save_service_rollout(
                service,
                image=f"{repository}:{tag}",
                digest=image_id,
                version=run.record.version,
            )
        result["message"] = f"built {len(stack.builds)} image(s) tagged {tag}"
    if not registry:
        return
    async with run.step(StepName.PUSH) as result:
        for service in sorted(stack.builds):
            repository = image_repository(registry, run.record.named_application, service)

            def log(text: str, stream: LogStream, service: str = service) -> None:
                run.log.write(text, source=LogSource.BUILD, stream=stream, source_name=service)

            try:
                digest = await push_image(run.swarm, repository, tag, log)
            except PushFailed as exc:
                raise StepFailure(
                    ErrorCode.DOCKER_UNAVAILABLE, str(exc), state=DeploymentState.ERROR
                ) from exc
            run.images[service] = f"{repository}:{tag}@{digest}"
            run.digests[service] = digest
            run.say(f"pushed {repository}:{tag} {digest}")
            await run.save_service_rollout(service, image=run.images[service], digest=digest)
        result["message"] = f"pushed {len(stack.builds)} image(s) to {registry}"


# --- prebuilt image deployments -------------------------------------------------------------


async def run_image(run: DeploymentRun) -> None:
    record = run.record
    service = record.service or record.named_application
    image = record.image
    assert image is not None  # an image deployment was admitted with it
    async with run.step(StepName.FETCH) as result:
        await _check_policy(run, image=image)
        run.images[service] = image
        digest = image.partition("@")[2]
        if digest:
            run.digests[service] = digest
        result["message"] = image
        run.say(f"image {image}")
    stack = single_service_stack(service)
    existing = await run.swarm.find_service(f"{run.namespace}_{service}")
    template = None
    if existing is not None:
        template = copy.deepcopy(existing["Spec"])
        template["TaskTemplate"]["ContainerSpec"]["Image"] = record.image
        labels = template.setdefault("Labels", {})
        labels.update(_labels(run))
        labels["com.docker.stack.image"] = record.image
    await _rollout(run, stack, replace={service: template} if template else None, prune=False)


# --- rollout and converge -------------------------------------------------------------------
def _labels(run: DeploymentRun) -> dict[str, str]:
    return {
        "com.deploybot.application": run.record.named_application,
        "com.deploybot.environment": run.record.environment,
        "com.deploybot.deployment": str(run.id),
        "com.deploybot.version": run.record.version or "",
    }


async def _rollout(
    run: DeploymentRun,
    stack: StackFile,
    *,
    replace: dict[str, dict[str, Any]] | None = None,
    prune: bool = True,
) -> None:
    namespace = run.namespace
    settings = run.ctx.settings
    options = RolloutOptions.from_json(run.record.rollout_options)
    strategy = run.record.strategy
    watches: list[ServiceWatch] = []
    followers: list[asyncio.Task[None]] = []
    await _check_dependencies(run)  # again: they may have changed since the request
    objects = await plan_objects(run, stack, namespace)  # checks all before changing any
    try:
        specs = service_specs(
            stack,
            namespace,
            run.images,
            _labels(run),
            default_endpoint_mode=settings.endpoint_mode,
            default_publish_mode=settings.publish_mode,
            object_names=objects.names,
        )
        networks = network_specs(stack, namespace)
    except StackFileError as exc:
        raise StepFailure(ErrorCode.INVALID_DEPLOYMENT_SPEC, str(exc)) from exc
    await objects.create(run, namespace)
    bodies = {
        spec.service: with_strategy(
            (replace or {}).get(spec.service) or with_object_ids(spec.spec, objects.ids),
            strategy,
            options.rolling_update,
        )
        for spec in specs
    }
    twins = (DeploymentStrategy.CANARY, DeploymentStrategy.BLUE_GREEN)
    if options.pre_deploy_hooks or strategy in twins:
        await run.ensure_networks(networks)
    if options.pre_deploy_hooks:
        await hooks_step(run, StepName.PRE_DEPLOY, options.pre_deploy_hooks, bodies)
    if strategy is DeploymentStrategy.CANARY:
        run.canaries = await canary_step(run, bodies, options.canary_period)
    elif strategy is DeploymentStrategy.BLUE_GREEN:
        run.canaries = await green_step(run, bodies)
    since = time.time() - 1
    async with run.step(StepName.ROLLOUT) as result:
        await run.ensure_networks(networks)
        if strategy is DeploymentStrategy.RECREATE:
            await stop_old_tasks(run, bodies)
        kept: set[str] = set()
        for spec in specs:
            body = bodies[spec.service]
            existing = await run.swarm.find_service(spec.name)
            known = await snapshot_tasks(run.swarm, existing["ID"]) if existing else set()
            service_id, created = await run.deploy_service(spec.name, body, networks)
            run.swarm_changed = True
            kept.add(service_id)
            run.say(f"{'created' if created else 'updated'} service {spec.name}")
            await run.save_service_rollout(
                spec.service,
                swarm_name=spec.name,
                swarm_id=service_id,
                image=run.images.get(spec.service) or image_of(body) or None,
                digest=run.digests.get(spec.service),
                version=run.record.version,
                spec=body,
                state="updating",
                started_at=utcnow(),
            )
            watches.append(ServiceWatch(spec.service, service_id, known_tasks=known))
            followers.append(asyncio.create_task(run.follow(service_id, spec.service, since)))
        if prune:
            for service in await run.swarm.stack_services(namespace):
                if service["ID"] not in kept:
                    await run.swarm.remove_service(service["ID"])
                    run.say(f"removed service {service['Spec']['Name']} (not in the stack)")
        result["message"] = f"{len(specs)} service(s) on stack {namespace}"

    try:
        async with run.step(StepName.CONVERGE) as result:
            try:
                await wait_converged(
                    run.swarm,
                    watches,
                    timeout=settings.converge_timeout,
                    stable=settings.converge_stable_seconds,
                    on_change=run.progress,
                    patience=settings.docker_patience,
                    on_unavailable=run.say,
                )
            except ConvergeFailed as exc:
                raise StepFailure(ErrorCode.ROLLOUT_FAILED, str(exc)) from exc
            except ConvergeTimeout as exc:
                raise StepFailure(ErrorCode.CONVERGE_TIMEOUT, str(exc)) from exc
            finally:
                await run.save_watches(watches)
            result["message"] = ", ".join(f"{w.service} {w.running}/{w.desired}" for w in watches)
    finally:
        await stop_following(followers)  # after the last lines of the new tasks
        await remove_services(run, run.canaries)
    if options.health_check:
        await health_step(run, options.health_check, bodies, watches)
    if options.post_deploy_hooks:
        await hooks_step(run, StepName.POST_DEPLOY, options.post_deploy_hooks, bodies)
    await prune_unused_objects(run, namespace)


async def prune_unused_objects(run: DeploymentRun, namespace: str) -> None:
    """After a successful rollout; a failure to clean up never fails the deployment."""
    try:
        await prune_objects(run, namespace)
    except Exception as exc:
        run.say(f"unused configs and secrets not removed: {exc}", LogStream.STDERR)


async def _check_dependencies(run: DeploymentRun) -> None:
    """Seed 002's dependencies, checked again just before the Swarm is changed."""
    dependencies = list(run.record.dependencies or [])
    if not dependencies:
        return
    try:
        await retry_unavailable(
            lambda: check_dependencies(
                run.ctx.db,
                SwarmStatus(run.swarm, run.ctx.settings.namespaces),
                run.record.environment,
                dependencies,
            ),
            what=f"deployment {run.id}: checking its dependencies",
        )
    except DeploybotError as exc:
        raise StepFailure(exc.code, exc.message) from exc
    run.say(f"dependencies healthy: {', '.join(dependencies)}")


async def _heartbeat(
    ctx: RunnerContext, deployment_id: int, lost: asyncio.Event, driver: asyncio.Task[object]
) -> None:
    """Beat while the deployment runs; a claim taken over by another runner (this one was
    silent too long) stops this runner's work on it at once."""
    every = min(30.0, ctx.settings.runner_stale_after / 3)
    while True:
        await asyncio.sleep(every)
        try:
            ours = await queue.heartbeat(ctx.db, deployment_id, ctx.runner_id)
        except Exception:  # a database hiccup: try again at the next beat
            continue
        if not ours:
            logger.warning("deployment %s was taken over by another runner", deployment_id)
            lost.set()
            driver.cancel()
            return


def _choose_work(run: DeploymentRun) -> Coroutine[Any, Any, None]:
    record = run.record
    if record.trigger is DeploymentTrigger.ROLLBACK:
        return run_rollback(run)
    if record.image:
        return run_image(run)
    return run_git(run)


async def _drive(run: DeploymentRun, replaced: str | None) -> Outcome:
    """Run the deployment's work (or, taken over, reconcile it) and classify how it ended."""
    assert run.cancel is not None
    try:
        if replaced is not None and await reconcile.take_over(run, replaced):
            await run.cancel.run(reconcile.watch_rollout(run, replaced))
        else:
            await run.cancel.run(_choose_work(run))
    except DeploymentCancelled as exc:
        return DeploymentState.CANCELLED, None, exc.message
    except StepFailure as exc:
        return await roll_back_on_failure(run, exc.state, exc.code, exc.message)
    except DockerUnavailable as exc:
        return DeploymentState.ERROR, ErrorCode.DOCKER_UNAVAILABLE, f"Docker is unavailable: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await remove_services(run, run.canaries)  # a rollout that failed early
    return DeploymentState.SUCCESS, None, None


async def execute(
    ctx: RunnerContext, deployment_id: int, *, replaced: str | None = None
) -> DeploymentState | None:
    """Run a claimed deployment to its end and record the outcome. `replaced`: the deployment
    was taken over from a runner that is gone (why). None when it was left unfinished: this
    runner stopped (then it is handed over) or another runner took it over."""
    # Its first read, like every read and write of the runner's, waits out a database
    # restart: the deployment was claimed, and an outage now must not leave it stranded.
    record = await retry_unavailable(
        lambda: history.get_deployment(ctx.db, deployment_id),
        what=f"deployment {deployment_id}: reading it",
    )
    assert record is not None
    lost = asyncio.Event()
    driver = asyncio.current_task()
    assert driver is not None
    beat = asyncio.create_task(_heartbeat(ctx, deployment_id, lost, driver))
    try:
        async with LogWriter(
            ctx.db, ctx.bus, deployment_id, buffer_bytes=ctx.settings.log_buffer_bytes
        ) as log:
            run = DeploymentRun(
                ctx, record, log, cancel=CancelWatch(ctx.db, deployment_id), claim_lost=lost
            )
            run.say(
                f"deployment #{deployment_id} of {record.named_application} {record.version}"
                f" to {record.environment}"
            )
            try:
                state, code, message = await _drive(run, replaced)
            except HandedOver as exc:
                run.say(f"{exc.message}: the deployment is left to the next runner")
                await _release(ctx, deployment_id)
                return None
            except asyncio.CancelledError:
                if lost.is_set():
                    driver.uncancel()  # the heartbeat's cancel, not the runner's
                    run.say("another runner took this deployment over", LogStream.STDERR)
                    return None
                if ctx.stopping.is_set():  # the grace period is over
                    run.say("the runner stopped: the deployment is left to the next runner")
                    await _release(ctx, deployment_id)
                raise
            except Exception as exc:
                logger.exception("deployment %s failed unexpectedly", deployment_id)
                state, code = DeploymentState.ERROR, ErrorCode.INTERNAL_ERROR
                message = f"internal error: {type(exc).__name__}: {exc}"
            if replaced is not None and message and state is not DeploymentState.CANCELLED:
                message = f"{message} (the runner was replaced: the previous {replaced})"
            if message:
                run.say(f"deployment {state.value.lower()}: {message}", LogStream.STDERR)
            else:
                run.say("deployment succeeded")
    finally:
        beat.cancel()
    # The outcome is what happened on the Swarm: a database restart meanwhile delays its
    # record, it does not change it.
    ours = await retry_unavailable(
        lambda: queue.owns(ctx.db, deployment_id, ctx.runner_id),
        what=f"deployment {deployment_id}: checking the claim",
    )
    if not ours:
        logger.warning("deployment %s is no longer this runner's: not ended", deployment_id)
        return None
    if state is DeploymentState.SUCCESS:
        await publish_release_of(ctx.db, ctx.settings, ctx.mirrors, record)
    await retry_unavailable(
        lambda: lifecycle.finish_deployment(
            ctx.db,
            ctx.bus,
            deployment_id,
            state,
            error_code=code,
            error_message=message,
            swarm_changed=run.swarm_changed,
        ),
        what=f"deployment {deployment_id}: recording its end",
    )
    return state


async def _release(ctx: RunnerContext, deployment_id: int) -> None:
    """Leave the deployment to the next runner (waiting out a database restart)."""
    await retry_unavailable(
        lambda: queue.release(ctx.db, deployment_id, ctx.runner_id),
        what=f"deployment {deployment_id}: handing it over",
    )
