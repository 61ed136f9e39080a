"""The deploy policy's rules, one by one, on the stack files the loader parses, and its
storage (the settings' policy until an admin edits it) on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from deploybot.access import Principal, parse_grants
from deploybot.config import Settings
from deploybot.core import history, queue, rollbacks
from deploybot.core.policy import (
    Claim,
    ClaimKind,
    DeployPolicy,
    PolicyChange,
    PolicyError,
    PortRange,
    local_repository,
    parse_port_ranges,
    registry_of,
    repository_violation,
    restore_violations,
    spec_claims,
    stack_violations,
    without_credentials,
)
from deploybot.core.policy_store import current_policy, update_policy
from deploybot.db.engine import Database
from deploybot.db.models import Application, Deployment, ServiceRollout
from deploybot.domain import DeploymentState
from deploybot.errors import DeploybotError, ErrorCode, ValidationFailed
from deploybot.events.bus import EventBus
from deploybot.inputs import DeploymentRef, PageRequest, RollbackRequest
from deploybot.instance import Instance
from deploybot.records import DeploymentRecord
from deploybot.runner.pipeline import execute
from deploybot.runner.preflight import Preflight, mirror_cache
from deploybot.runner.run import RunnerContext
from deploybot.runner.stack import parse_stack_file, service_specs
from deploybot.runner.stack.claims import stack_claims
from deploybot.runner.swarm import Swarm
from tests.conftest import BASE_IMAGE, both_databases, docker

DEFAULT = DeployPolicy()


def never_exists(_path: str) -> bool:
    return False


# --- settings ----------------------------------------------------------------------------------


def test_settings_configure_the_policy() -> None:
    policy = Settings(
        policy_repositories="https://github.com/acme/*, file:///srv/git/*",
        policy_registries="127.0.0.1:5000",
        policy_bind_mount_prefixes="/srv/data/, /var/log",
        policy_capabilities="net_admin",
        policy_sysctls="net.core.*",
        policy_published_ports="80,443,8000-8999",
        policy_allow_devices=True,
    ).deploy_policy
    assert policy.repositories == ("https://github.com/acme/*", "file:///srv/git/*")
    assert policy.registries == ("127.0.0.1:5000",)
    assert policy.bind_mount_prefixes == ("/srv/data", "/var/log")
    assert policy.capabilities == ("CAP_NET_ADMIN",)
    assert policy.published_ports == (
        PortRange(80, 80),
        PortRange(443, 443),
        PortRange(8000, 8999),
    )
    assert policy.allow_devices and not policy.allow_host_namespaces
    assert not policy.allow_privileged


def test_default_settings_give_the_default_policy() -> None:
    assert Settings().deploy_policy == DEFAULT
    assert DEFAULT.repositories == ("*",) and DEFAULT.registries == ("*",)
    assert DEFAULT.bind_mount_prefixes == () and DEFAULT.capabilities == ()
    assert DEFAULT.published_ports == (PortRange(1024, 65535),)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("policy_published_ports", "0-80", "not a range within 1-65535"),
        ("policy_published_ports", "90-80", "not a range within 1-65535"),
        ("policy_published_ports", "http", "is not a port or a range"),
        ("policy_bind_mount_prefixes", "srv/data", "must be an absolute path"),
        ("policy_capabilities", "net admin", "is not a capability name"),
        ("policy_sysctls", "net core", "is not a sysctl name"),
    ],
)
def test_settings_that_make_no_sense_are_refused_at_start(
    setting: str, value: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{setting: value})  # type: ignore[arg-type]


# --- repositories ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/shop.git",
        "git://127.0.0.1:9418/shop.git",
        "ssh://git@example.com/acme/shop.git",
        "git@github.com:acme/shop.git",
    ],
)
def test_any_remote_repository_is_allowed_by_default(url: str) -> None:
    assert DEFAULT.repository_refusal(url, exists=never_exists) is None


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("/srv/git/shop.git", "file:///srv/git/shop.git"),
        ("file:///srv/git/shop.git", "file:///srv/git/shop.git"),
        ("/srv/git/../../etc", "file:///etc"),
        ("FILE:///srv/git/shop.git", "file:///srv/git/shop.git"),
    ],
)
def test_local_paths_and_file_urls_are_refused_by_default(url: str, local: str) -> None:
    assert local_repository(url) == local
    refusal = DEFAULT.repository_refusal(url)
    assert refusal is not None
    assert refusal.startswith(f"{local} is a repository on this server's filesystem")


def test_relative_paths_are_local_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert local_repository("shop") == (tmp_path / "shop").as_uri()
    # `host:path` is ssh syntax, unless such a path exists here (as the git layer reads it).
    assert local_repository("shop:main") is None
    (tmp_path / "shop:main").mkdir()
    assert local_repository("shop:main") == (tmp_path / "shop:main").as_uri()
    assert DEFAULT.repository_refusal("shop:main") is not None


def test_local_repositories_need_an_explicit_file_pattern() -> None:
    policy = DeployPolicy(repositories=("*", "file:///srv/git/*"))
    assert policy.repository_refusal("/srv/git/shop.git") is None
    assert policy.repository_refusal("file:///srv/git/shop.git") is None
    assert policy.repository_refusal("/srv/git/../other/x.git") is not None
    assert policy.repository_refusal("/home/me/shop.git") is not None


def test_repository_patterns_restrict_remote_urls() -> None:
    policy = DeployPolicy(repositories=("https://github.com/acme/*",))
    assert policy.repository_refusal("https://github.com/acme/shop.git") is None
    assert policy.repository_refusal("https://TOKEN@github.com/acme/shop.git") is None
    refusal = policy.repository_refusal("https://TOKEN@github.com/evil/shop.git")
    assert refusal == (
        "https://github.com/evil/shop.git matches none of the allowed repositories"
        " (https://github.com/acme/*)"
    )
    assert "TOKEN" not in refusal
    # A `file://` pattern never matches a remote URL, `*` never a local one.
    assert DeployPolicy(repositories=("file://*",)).repository_refusal(
        "https://github.com/acme/shop.git"
    )


def test_credentials_are_not_part_of_what_patterns_see() -> None:
    assert without_credentials("https://u:p@host:8443/a.git") == "https://host:8443/a.git"
    assert without_credentials("git@github.com:acme/a.git") == "git@github.com:acme/a.git"


def test_a_repository_violation_is_a_typed_error_on_the_field() -> None:
    error = repository_violation(DEFAULT, "file:///etc")
    assert error is not None
    assert (error.code, error.field) == (ErrorCode.POLICY_VIOLATION, "repositoryUrl")
    assert repository_violation(DEFAULT, "https://example.com/a.git") is None


# --- registries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "registry", "path"),
    [
        ("busybox", "docker.io", "library/busybox"),
        ("busybox:1.36", "docker.io", "library/busybox"),
        ("acme/web:1", "docker.io", "acme/web"),
        ("127.0.0.1:5000/po/web:1@sha256:" + "a" * 64, "127.0.0.1:5000", "po/web"),
        ("localhost/web", "localhost", "web"),
        ("ghcr.io/acme/tools/web:2", "ghcr.io", "acme/tools/web"),
    ],
)
def test_registry_of_reads_references_as_docker_does(image: str, registry: str, path: str) -> None:
    assert registry_of(image) == (registry, path)


def test_registries_restrict_images() -> None:
    policy = DeployPolicy(registries=("127.0.0.1:5000", "ghcr.io/acme/*"))
    assert policy.image_refusal("127.0.0.1:5000/po/web:1") is None
    assert policy.image_refusal("ghcr.io/acme/web:1") is None
    assert policy.image_refusal("ghcr.io/evil/web:1") is not None
    assert policy.image_refusal("busybox") == (
        "image busybox comes from registry docker.io, which is not among the allowed"
        " registries (127.0.0.1:5000, ghcr.io/acme/*)"
    )
    assert DEFAULT.image_refusal("busybox") is None


# --- what stacks ask of the nodes --------------------------------------------------------------

STACK = """
version: "3.8"
services:
  web:
    image: 127.0.0.1:5000/po/web:1
    volumes:
      - data:/data
      - /var/run/docker.sock:/var/run/docker.sock
      - type: bind
        source: /srv/app/static
        target: /static
      - type: tmpfs
        target: /tmp
    cap_add: [net_admin, CAP_SYS_TIME]
    devices: ["/dev/fuse:/dev/fuse"]
    network_mode: host
    pid: host
    ipc: host
    privileged: true
    security_opt: ["seccomp:unconfined", "no-new-privileges:true"]
    sysctls:
      net.core.somaxconn: 1024
    ports:
      - "18080:80"
      - "80:80"
      - {target: 443, published: 443, mode: host}
      - "9000"
  worker:
    build: .
    sysctls: ["net.ipv4.ip_forward=1"]
    networks: [hostnet]
volumes:
  data: {}
  rootfs:
    driver: local
    driver_opts: {type: none, o: bind, device: /}
  disk:
    driver_opts: {type: ext4, device: /dev/sdb1}
  share:
    driver_opts: {type: nfs, o: "addr=10.0.0.1", device: ":/export"}
networks:
  hostnet:
    external: true
    name: host
"""


def test_stack_claims_name_each_key() -> None:
    claims = stack_claims(parse_stack_file(STACK, "docker-stack.yml"))
    assert [(c.key, c.kind, c.value) for c in claims] == [
        ("services.web.image", ClaimKind.IMAGE, "127.0.0.1:5000/po/web:1"),
        ("services.web.volumes[1]", ClaimKind.BIND_MOUNT, "/var/run/docker.sock"),
        ("services.web.volumes[2]", ClaimKind.BIND_MOUNT, "/srv/app/static"),
        ("services.web.cap_add[0]", ClaimKind.CAPABILITY, "CAP_NET_ADMIN"),
        ("services.web.cap_add[1]", ClaimKind.CAPABILITY, "CAP_SYS_TIME"),
        ("services.web.devices[0]", ClaimKind.DEVICE, "/dev/fuse"),
        ("services.web.network_mode", ClaimKind.HOST_NAMESPACE, "network_mode: host"),
        ("services.web.pid", ClaimKind.HOST_NAMESPACE, "pid: host"),
        ("services.web.ipc", ClaimKind.HOST_NAMESPACE, "ipc: host"),
        ("services.web.privileged", ClaimKind.PRIVILEGED, "privileged: true"),
        ("services.web.security_opt[0]", ClaimKind.PRIVILEGED, "security_opt seccomp:unconfined"),
        ("services.web.sysctls.net.core.somaxconn", ClaimKind.SYSCTL, "net.core.somaxconn"),
        ("services.web.ports[0]", ClaimKind.PUBLISHED_PORT, "18080"),
        ("services.web.ports[1]", ClaimKind.PUBLISHED_PORT, "80"),
        ("services.web.ports[2]", ClaimKind.PUBLISHED_PORT, "443"),
        ("services.worker.sysctls[0]", ClaimKind.SYSCTL, "net.ipv4.ip_forward"),
        ("volumes.disk.driver_opts.device", ClaimKind.DEVICE, "/dev/sdb1"),
        ("volumes.rootfs.driver_opts.device", ClaimKind.BIND_MOUNT, "/"),
        ("networks.hostnet", ClaimKind.HOST_NAMESPACE, "the host network"),
    ]


def test_the_default_policy_refuses_everything_that_reaches_the_host() -> None:
    stack = parse_stack_file(STACK, "docker-stack.yml")
    errors = stack_violations(DEFAULT, stack.filename, stack_claims(stack))
    assert all((e.code, e.field) == (ErrorCode.POLICY_VIOLATION, "stackFile") for e in errors)
    refused = [e.message.split(": ")[1] for e in errors]
    assert refused == [
        "services.web.volumes[1]",
        "services.web.volumes[2]",
        "services.web.cap_add[0]",
        "services.web.cap_add[1]",
        "services.web.devices[0]",
        "services.web.network_mode",
        "services.web.pid",
        "services.web.ipc",
        "services.web.privileged",
        "services.web.security_opt[0]",
        "services.web.sysctls.net.core.somaxconn",
        "services.web.ports[1]",
        "services.web.ports[2]",
        "services.worker.sysctls[0]",
        "volumes.disk.driver_opts.device",
        "volumes.rootfs.driver_opts.device",
        "networks.hostnet",
    ]
    assert errors[0].message == (
        "docker-stack.yml: services.web.volumes[1]: bind mount of host path"
        " /var/run/docker.sock is not allowed (allowed prefixes: none)"
    )


def test_a_permissive_policy_accepts_the_same_stack() -> None:
    stack = parse_stack_file(STACK, "docker-stack.yml")
    policy = DeployPolicy(
        bind_mount_prefixes=("/",),
        capabilities=("ALL",),
        sysctls=("*",),
        published_ports=(PortRange(1, 65535),),
        allow_devices=True,
        allow_host_namespaces=True,
        allow_privileged=True,
    )
    assert stack_violations(policy, stack.filename, stack_claims(stack)) == []


def claim(kind: ClaimKind, value: str) -> Claim:
    return Claim("services.web.x", kind, value)


def test_bind_mounts_only_from_under_allowed_prefixes() -> None:
    policy = DeployPolicy(bind_mount_prefixes=("/srv/data/",))
    assert policy.claim_refusal(claim(ClaimKind.BIND_MOUNT, "/srv/data")) is None
    assert policy.claim_refusal(claim(ClaimKind.BIND_MOUNT, "/srv/data/app/logs")) is None
    assert policy.claim_refusal(claim(ClaimKind.BIND_MOUNT, "/srv/database")) is not None
    assert policy.claim_refusal(claim(ClaimKind.BIND_MOUNT, "/srv/data/../../etc")) is not None
    assert policy.claim_refusal(claim(ClaimKind.BIND_MOUNT, "/")) is not None


def test_capabilities_by_allow_list() -> None:
    policy = DeployPolicy(capabilities=("net_bind_service",))
    assert policy.capabilities == ("CAP_NET_BIND_SERVICE",)
    assert policy.claim_refusal(claim(ClaimKind.CAPABILITY, "NET_BIND_SERVICE")) is None
    assert policy.claim_refusal(claim(ClaimKind.CAPABILITY, "CAP_SYS_ADMIN")) == (
        "capability CAP_SYS_ADMIN is not allowed (allowed: CAP_NET_BIND_SERVICE)"
    )
    assert policy.claim_refusal(claim(ClaimKind.CAPABILITY, "ALL")) is not None


@pytest.mark.parametrize(
    ("kind", "value", "refusal", "flag"),
    [
        (ClaimKind.DEVICE, "/dev/fuse", "device /dev/fuse is not allowed", "allow_devices"),
        (
            ClaimKind.HOST_NAMESPACE,
            "pid: host",
            "pid: host is not allowed",
            "allow_host_namespaces",
        ),
        (
            ClaimKind.PRIVILEGED,
            "privileged: true",
            "privileged: true is not allowed",
            "allow_privileged",
        ),
    ],
)
def test_host_settings_only_when_allowed(
    kind: ClaimKind, value: str, refusal: str, flag: str
) -> None:
    assert DEFAULT.claim_refusal(claim(kind, value)) == refusal
    allowing = DeployPolicy(**{flag: True})  # type: ignore[arg-type]
    assert allowing.claim_refusal(claim(kind, value)) is None


def test_sysctls_by_glob() -> None:
    policy = DeployPolicy(sysctls=("net.core.*",))
    assert policy.claim_refusal(claim(ClaimKind.SYSCTL, "net.core.somaxconn")) is None
    assert policy.claim_refusal(claim(ClaimKind.SYSCTL, "kernel.shmmax")) == (
        "sysctl kernel.shmmax is not allowed (allowed: net.core.*)"
    )


def test_published_ports_within_the_allowed_ranges() -> None:
    policy = DeployPolicy(published_ports=parse_port_ranges(["80", "8000-8999"]))
    for port in ("80", "8000", "8999"):
        assert policy.claim_refusal(claim(ClaimKind.PUBLISHED_PORT, port)) is None
    for port in ("81", "7999", "9000"):
        assert policy.claim_refusal(claim(ClaimKind.PUBLISHED_PORT, port)) == (
            f"published port {port} is outside the allowed ports (80, 8000-8999)"
        )


def test_stack_images_by_registry() -> None:
    policy = DeployPolicy(registries=("127.0.0.1:5000",))
    assert policy.claim_refusal(claim(ClaimKind.IMAGE, "127.0.0.1:5000/a:1")) is None
    assert policy.claim_refusal(claim(ClaimKind.IMAGE, "busybox")) is not None


def test_the_policy_document_round_trips_and_fills_gaps_from_the_settings() -> None:
    policy = DeployPolicy(
        repositories=("https://github.com/acme/*",),
        bind_mount_prefixes=("/srv",),
        published_ports=(PortRange(80, 80), PortRange(1024, 2048)),
        allow_privileged=True,
    )
    assert DeployPolicy.from_json(policy.to_json()) == policy
    base = DeployPolicy(sysctls=("net.*",))
    assert DeployPolicy.from_json({"allowDevices": True}, base=base) == DeployPolicy(
        sysctls=("net.*",), allow_devices=True
    )


def test_bad_entries_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match="repositories: empty"):
        DeployPolicy(repositories=("",))
    with pytest.raises(PolicyError, match="must be an absolute path"):
        DeployPolicy(bind_mount_prefixes=("data",))


# --- storage -----------------------------------------------------------------------------------


@both_databases
async def test_an_edit_replaces_the_settings_policy_until_reset(database: Database) -> None:
    settings = Settings(policy_bind_mount_prefixes="/srv")
    stored = await current_policy(database, settings)
    assert not stored.edited and stored.policy == settings.deploy_policy

    edited = await update_policy(
        database,
        settings,
        PolicyChange(registries=("127.0.0.1:5000",), published_ports=(PortRange(80, 80),)),
        by="token:1:admin",
    )
    assert edited.edited and edited.updated_by == "token:1:admin"
    again = await current_policy(database, settings)
    assert again.policy == edited.policy
    assert again.policy.bind_mount_prefixes == ("/srv",)  # kept from the settings
    assert again.policy.registries == ("127.0.0.1:5000",)
    assert again.updated_at is not None and again.updated_by == "token:1:admin"

    # A process with other settings sees the edit as saved.
    other = await current_policy(database, Settings())
    assert other.policy == edited.policy

    await update_policy(database, settings, PolicyChange(allow_devices=True), by="x")
    assert (await current_policy(database, settings)).policy.registries == ("127.0.0.1:5000",)

    reset = await update_policy(database, settings, PolicyChange(reset=True), by="x")
    assert not reset.edited and reset.policy == settings.deploy_policy
    assert (await current_policy(database, settings)).policy == settings.deploy_policy


@both_databases
async def test_an_edit_that_makes_no_sense_names_its_field(database: Database) -> None:
    with pytest.raises(DeploybotError) as caught:
        await update_policy(
            database, Settings(), PolicyChange(bind_mount_prefixes=("relative",)), by=None
        )
    assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID_INPUT, "bindMountPrefixes")
    assert not (await current_policy(database, Settings())).edited


# --- rollbacks: the recorded specs of the target -----------------------------------------------


def test_recorded_specs_claim_what_their_stack_claimed() -> None:
    stack = parse_stack_file(STACK, "docker-stack.yml")
    specs = {s.service: s.spec for s in service_specs(stack, "po-spec", {"worker": "w:1"})}
    claims = [c for s in sorted(specs) for c in spec_claims(s, specs[s])]
    assert [(c.kind, c.value) for c in claims] == [
        (ClaimKind.BIND_MOUNT, "/var/run/docker.sock"),
        (ClaimKind.BIND_MOUNT, "/srv/app/static"),
        (ClaimKind.CAPABILITY, "CAP_NET_ADMIN"),
        (ClaimKind.CAPABILITY, "CAP_SYS_TIME"),
        (ClaimKind.SYSCTL, "net.core.somaxconn"),
        (ClaimKind.PUBLISHED_PORT, "80"),
        (ClaimKind.PUBLISHED_PORT, "443"),
        (ClaimKind.PUBLISHED_PORT, "18080"),
        (ClaimKind.SYSCTL, "net.ipv4.ip_forward"),
        (ClaimKind.HOST_NAMESPACE, "the host network"),
    ]
    errors = restore_violations(DEFAULT, 7, specs)
    assert errors[0].message == (
        "deployment #7: services.web.Mounts[1]: bind mount of host path /var/run/docker.sock"
        " is not allowed (allowed prefixes: none)"
    )
    assert len(errors) == 9  # all but port 18080


@both_databases
async def test_rollbacks_are_held_to_the_policy_at_admission_and_at_run_time(
    database: Database, swarm: str, swarm_client: Swarm, tmp_path: Path
) -> None:
    mounted = {
        "Name": "po-rb_web",
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": BASE_IMAGE,
                "Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/s"}],
            }
        },
    }
    first, current = await _history(database, [mounted, {"Name": "po-rb_web"}])
    strict = Settings(environment="test", docker_host=swarm, work_dir=tmp_path / "work")
    before = (await history.list_deployments(database, None, PageRequest(first=10))).edges

    with pytest.raises(ValidationFailed) as caught:
        await _rollback(database, strict, first)
    [error] = caught.value.errors
    assert error.code is ErrorCode.POLICY_VIOLATION
    assert error.message.startswith(f"deployment #{first}: services.web.Mounts[0]: bind mount")
    after = (await history.list_deployments(database, None, PageRequest(first=10))).edges
    assert len(after) == len(before)

    # Admitted under a policy that allows it, refused by the runner once it is tightened.
    permissive = Settings(
        environment="test",
        docker_host=swarm,
        work_dir=tmp_path / "work",
        policy_bind_mount_prefixes="/var/run",
    )
    record = await _rollback(database, permissive, first)
    assert record.rollback_to_id == first and record.rollback_of_id == current
    assert await queue.claim_next(database, "test", "runner-po") == record.id
    ctx = RunnerContext(
        database, EventBus(), strict, mirror_cache(strict), swarm_client, runner_id="runner-po"
    )
    assert await execute(ctx, record.id) is DeploymentState.FAILURE
    done = await history.get_deployment(database, record.id)
    assert done is not None and done.error_code == "POLICY_VIOLATION"
    assert done.error_message is not None and "/var/run/docker.sock" in done.error_message
    assert docker("service", "ls", "-q", "--filter", "name=po-rb_").strip() == ""


async def _history(db: Database, specs: list[dict[str, Any]]) -> list[int]:
    """One successful deployment of `po-rb` per recorded web spec; the last is current."""
    ids: list[int] = []
    async with db.transaction() as session:
        for n, spec in enumerate(specs, start=1):
            state = DeploymentState.SUCCESS if n == len(specs) else DeploymentState.INACTIVE
            row = Deployment(environment="test", application="po-rb", version=f"v{n}", state=state)
            session.add(row)
            await session.flush()
            assert row.id is not None
            ids.append(row.id)
            session.add(ServiceRollout(deployment_id=row.id, service="web", spec=spec))
        session.add(Application(name="po-rb", environment="test", current_deployment_id=ids[-1]))
    return ids


async def _rollback(db: Database, settings: Settings, target: int) -> DeploymentRecord:
    request = RollbackRequest(application="po-rb", deployment=DeploymentRef(None, target))
    swarm = Swarm(settings.docker_host)
    try:
        preflight = Preflight(settings, swarm)
        return await rollbacks.create_rollback(db, EventBus(), settings, preflight, request)
    finally:
        await swarm.close()


# --- only admins read or change it -------------------------------------------------------------


@both_databases
async def test_the_backend_lets_only_admins_read_or_change_the_policy(
    database: Database, empty_database_url: str, tmp_path: Path
) -> None:
    instance = Instance(Settings(database_url=empty_database_url, work_dir=tmp_path / "w"))
    try:
        for grants in (["read,deploy,record"], ["admin:other-env"]):
            backend = instance.backend_for(Principal("ci", parse_grants(grants)))
            for call in (backend.deploy_policy(), backend.update_deploy_policy(PolicyChange())):
                with pytest.raises(DeploybotError) as caught:
                    await call
                assert caught.value.code is ErrorCode.FORBIDDEN, grants
        admin = instance.backend_for(Principal("ops", parse_grants(["admin"]), token_id=3))
        changed = await admin.update_deploy_policy(PolicyChange(allow_privileged=True))
        assert changed.updated_by == "token:3:ops"
        assert (await admin.deploy_policy()).policy.allow_privileged
    finally:
        await instance.swarm.close()
        await instance.db.dispose()
