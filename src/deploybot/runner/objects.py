"""The stack's Swarm configs and secrets at deploy time: check, create, point the services
at them, and remove the versions nothing needs any more.

`plan_objects` checks everything first (external ones exist, kept secrets are set, files
were in the commit) without changing the Swarm; `ObjectPlan.create` then makes the missing
content-named objects; `with_object_ids` fills their IDs into the service specs. A rollback's
recorded specs get fresh IDs by name (`refresh_object_ids`), and after a successful
deployment `prune_objects` removes deploybot's objects that neither a service of the stack
nor one of the application's recent rollback targets uses.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from deploybot.core import rollbacks
from deploybot.core.secrets import kept_values
from deploybot.db.retry import retry_unavailable
from deploybot.errors import ErrorCode
from deploybot.runner.run import DeploymentRun, StepFailure
from deploybot.runner.stack import StackFile
from deploybot.runner.stack.file_objects import (
    KINDS,
    MANAGED_LABEL,
    FileObject,
    Kind,
    content_digest,
    object_body,
    referenced_names,
    used_keys,
    versioned_name,
)
from deploybot.runner.stack.model import Invalid
from deploybot.secretbox import SecretKeyError, box_for


@dataclass
class _Pending:
    kind: Kind
    key: str
    obj: FileObject
    name: str
    digest: str
    data: bytes = field(repr=False)


@dataclass
class ObjectPlan:
    """What the stack's services mount: names by (kind, key), IDs by (kind, name)."""

    names: dict[tuple[str, str], str] = field(default_factory=dict)
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    pending: list[_Pending] = field(default_factory=list)

    async def create(self, run: DeploymentRun, namespace: str) -> None:
        """Create the content-named objects the Swarm lacks (a known name has this content)."""
        labels = {
            "com.deploybot.application": run.record.named_application,
            "com.deploybot.deployment": str(run.id),
        }
        for item in self.pending:
            body = object_body(item.obj, namespace, item.name, item.data, item.digest, labels)
            object_id, created = await run.swarm.create_object(item.kind, body)
            self.ids[(item.kind, item.name)] = object_id
            what = "created" if created else "unchanged"
            run.say(f"{item.kind} {item.key}: {item.name} ({what})")
        self.pending.clear()


def _missing(message: str) -> StepFailure:
    return StepFailure(ErrorCode.INVALID_DEPLOYMENT_SPEC, message)


async def plan_objects(run: DeploymentRun, stack: StackFile, namespace: str) -> ObjectPlan:
    """Check every config and secret the services use; nothing on the Swarm changes.

    Every problem is reported at once: a missing external object, an unset kept secret,
    a file the commit lacks.
    """
    plan = ObjectPlan()
    problems = [f"{stack.filename}: {key}: {message}" for key, message in stack.missing_files]
    kept: dict[str, tuple[str, FileObject]] = {}
    for kind in KINDS:
        objects = stack.configs if kind == "config" else stack.secrets
        for key in used_keys(stack.services, kind):
            obj = objects[key]
            path = f"{kind}s.{key}"
            if obj.kept_secret is not None:
                kept[obj.kept_secret] = (key, obj)
            elif obj.external:
                found = await run.swarm.find_object(kind, obj.engine_name(namespace))
                if found is None:
                    problems.append(
                        f"{stack.filename}: {path}: external {kind} {obj.name} does not exist"
                    )
                    continue
                plan.names[(kind, key)] = obj.engine_name(namespace)
                plan.ids[(kind, obj.engine_name(namespace))] = str(found["ID"])
            elif obj.file is not None and obj.file in stack.files:
                data = stack.files[obj.file]
                _add(plan, problems, stack, kind, key, obj, obj.engine_name(namespace), data)
    if kept:
        await _plan_kept(run, plan, problems, stack, namespace, kept)
    if problems:
        raise _missing("; ".join(problems))
    return plan


async def _plan_kept(
    run: DeploymentRun,
    plan: ObjectPlan,
    problems: list[str],
    stack: StackFile,
    namespace: str,
    kept: dict[str, tuple[str, FileObject]],
) -> None:
    record = run.record
    try:
        box = box_for(run.ctx.settings)
        values = await retry_unavailable(
            lambda: kept_values(
                run.ctx.db, box, record.environment, record.named_application, sorted(kept)
            ),
            what=f"deployment {run.id}: reading its kept secrets",
        )
    except SecretKeyError as exc:
        raise StepFailure(ErrorCode.INVALID_DEPLOYMENT_SPEC, str(exc)) from exc
    for name, (key, obj) in sorted(kept.items()):
        value = values.get(name)
        if value is None:
            problems.append(
                f"{stack.filename}: secrets.{key}: {record.named_application} has no kept secret"
                f" {name!r} on {record.environment} (set it with setSecret)"
            )
            continue
        try:
            data = value.reveal()
        except SecretKeyError as exc:
            problems.append(f"{stack.filename}: secrets.{key}: {exc}")
            continue
        # Named by a digest of the ciphertext: a new value gets a new name, the value's own
        # digest never shows.
        digest = content_digest(value.sealed)
        _add(plan, problems, stack, "secret", key, obj, f"{namespace}_{obj.name}", data, digest)


def _add(
    plan: ObjectPlan,
    problems: list[str],
    stack: StackFile,
    kind: Kind,
    key: str,
    obj: FileObject,
    base: str,
    data: bytes,
    digest: str | None = None,
) -> None:
    digest = digest or content_digest(data)
    try:
        name = versioned_name(base, digest, f"{kind}s.{key}")
    except Invalid as exc:
        problems.append(f"{stack.filename}: {exc.key}: {exc.message}")
        return
    plan.names[(kind, key)] = name
    plan.pending.append(_Pending(kind, key, obj, name, digest, data))


def with_object_ids(spec: dict[str, Any], ids: dict[tuple[str, str], str]) -> dict[str, Any]:
    """The spec with each config and secret reference's ID (Swarm needs IDs, not names)."""
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    if not any(container.get(f"{k.title()}s") for k in KINDS):
        return spec
    body = copy.deepcopy(spec)
    container = body["TaskTemplate"]["ContainerSpec"]
    for kind in KINDS:
        title = kind.title()
        for ref in container.get(f"{title}s") or []:
            ref[f"{title}ID"] = ids[(kind, str(ref[f"{title}Name"]))]
    return body


async def refresh_object_ids(run: DeploymentRun, specs: list[dict[str, Any]]) -> None:
    """Recorded specs (a rollback): look every config and secret up by name, so a recreated
    one is found; BACKUP_NOT_FOUND, before anything changes, when one is gone."""
    ids: dict[tuple[str, str], str] = {}
    gone: list[str] = []
    for kind, name in sorted({n for spec in specs for n in referenced_names(spec)}):
        found = await run.swarm.find_object(kind, name)
        if found is None:
            gone.append(f"{kind} {name}")
        else:
            ids[(kind, name)] = str(found["ID"])
    if gone:
        raise StepFailure(
            ErrorCode.BACKUP_NOT_FOUND,
            f"no longer on the Swarm: {', '.join(gone)} (kept for the last"
            f" {run.ctx.settings.kept_object_versions} successful deployments)",
        )
    for index, spec in enumerate(specs):
        specs[index] = with_object_ids(spec, ids)


async def prune_objects(run: DeploymentRun, namespace: str) -> None:
    """Remove deploybot's configs and secrets of the stack that no service of the stack
    and none of the application's recent rollback targets use (never external ones)."""
    record = run.record
    swarm = run.swarm
    used: set[tuple[Kind, str]] = set()
    for service in await swarm.stack_services(namespace):
        used |= referenced_names(service["Spec"])
    recent = await retry_unavailable(
        lambda: rollbacks.recent_restorable_specs(
            run.ctx.db,
            record.named_application,
            record.environment,
            run.ctx.settings.kept_object_versions,
        ),
        what=f"deployment {run.id}: reading recent specs",
    )
    for spec in recent:
        used |= referenced_names(spec)
    for kind in KINDS:
        for obj in await swarm.stack_objects(kind, namespace):
            spec = obj["Spec"]
            if (spec.get("Labels") or {}).get(MANAGED_LABEL) != "true":
                continue
            if (kind, spec["Name"]) in used:
                continue
            if await swarm.remove_object(kind, obj["ID"]):
                run.say(f"removed unused {kind} {spec['Name']}")
