"""The deploy policy over GraphQL/HTTP from a running server, on SQLite and PostgreSQL: the
admin's query and mutation, and every refusal of `deploy` and `validateDeployment`, with
nothing written (the repository is served by a real git daemon, the stack is checked
against the real Swarm)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from deploybot.db.engine import Database
from deploybot.db.models import application_table, deployment_table, step_table
from tests.conftest import both_databases, server_env
from tests.gitserver import GitServer
from tests.servers import Client, ServerProcess

POLICY_FIELDS = """
repositories registries bindMountPrefixes capabilities sysctls
publishedPorts { start end } allowDevices allowHostNamespaces allowPrivileged
edited updatedAt updatedBy
"""
POLICY = f"query {{ deployPolicy {{ {POLICY_FIELDS} }} }}"
UPDATE = f"""
mutation($input: UpdateDeployPolicyInput!) {{
  updateDeployPolicy(input: $input) {{
    deployPolicy {{ {POLICY_FIELDS} }}
    userErrors {{ field message code }}
    clientMutationId
  }}
}}
"""
DEPLOY = """
mutation($input: DeployInput!) {
  deploy(input: $input) { deployment { number state } userErrors { field message code } }
}
"""
VALIDATE = """
query($input: DeployInput!) {
  validateDeployment(input: $input) { valid issues { field message severity code } }
}
"""

STACK = """
services:
  web:
    image: 127.0.0.1:5000/po/web:1
    deploy: {{endpoint_mode: dnsrr}}
{extra}
"""

#: (what the stack adds to its service, the key refused, the start of the reason)
STACK_REFUSALS = [
    (
        "volumes: ['/var/run/docker.sock:/var/run/docker.sock']",
        "services.web.volumes[0]",
        "bind mount of host path /var/run/docker.sock is not allowed",
    ),
    (
        "volumes: [{type: bind, source: /, target: /host}]",
        "services.web.volumes[0]",
        "bind mount of host path / is not allowed",
    ),
    ("cap_add: [SYS_ADMIN]", "services.web.cap_add[0]", "capability CAP_SYS_ADMIN is not allowed"),
    ("devices: ['/dev/kmsg:/dev/kmsg']", "services.web.devices[0]", "device /dev/kmsg is not"),
    ("network_mode: host", "services.web.network_mode", "network_mode: host is not allowed"),
    ("pid: host", "services.web.pid", "pid: host is not allowed"),
    ("ipc: host", "services.web.ipc", "ipc: host is not allowed"),
    ("privileged: true", "services.web.privileged", "privileged: true is not allowed"),
    (
        "sysctls: {net.ipv4.ip_forward: 1}",
        "services.web.sysctls.net.ipv4.ip_forward",
        "sysctl net.ipv4.ip_forward is not allowed",
    ),
    (
        "ports: [{target: 80, published: 80, mode: host}]",
        "services.web.ports[0]",
        "published port 80 is outside the allowed ports (1024-65535)",
    ),
]


def stack(extra: str) -> str:
    return STACK.format(extra="\n".join(f"    {line}" for line in extra.splitlines()))


async def written(database: Database) -> tuple[int, int, int]:
    """Rows of deployments, their steps, and applications."""
    async with database.connection() as connection:
        counts = []
        for table in (deployment_table, step_table, application_table):
            counts.append(
                (await connection.execute(select(func.count()).select_from(table))).scalar_one()
            )
    return counts[0], counts[1], counts[2]


def refused(api: Client, input: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The userErrors of deploy and the ERROR issues of validateDeployment for `input`."""
    payload = api.query(DEPLOY, {"input": input})["deploy"]
    assert payload["deployment"] is None
    report = api.query(VALIDATE, {"input": input})["validateDeployment"]
    assert report["valid"] is False
    errors = [i for i in report["issues"] if i["severity"] == "ERROR"]
    return payload["userErrors"], errors


def update(api: Client, **changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = api.query(UPDATE, {"input": changes})["updateDeployPolicy"]
    return result


@both_databases
async def test_each_stack_refusal_with_nothing_written(
    database: Database, api: Client, git_server: GitServer, swarm: str
) -> None:
    for index, (extra, key, reason) in enumerate(STACK_REFUSALS):
        repo = f"po-refused-{index}"
        sha = git_server.commit(repo, {"docker-compose.stack.yml": stack(extra)})
        input = {"repositoryUrl": git_server.url(repo), "commitSha": sha}
        user_errors, issues = refused(api, input)
        message = f"docker-compose.stack.yml: {key}: {reason}"
        for found in (user_errors, issues):
            assert len(found) == 1, (extra, found)
            assert found[0]["code"] == "POLICY_VIOLATION"
            assert found[0]["field"] == "stackFile"
            assert found[0]["message"].startswith(message), (found[0]["message"], message)

    # Several violations are all named, in the stack's order.
    extra = "privileged: true\ncap_add: [NET_ADMIN]\nports: ['81:80']"
    sha = git_server.commit("po-several", {"docker-compose.stack.yml": stack(extra)})
    user_errors, issues = refused(
        api, {"repositoryUrl": git_server.url("po-several"), "commitSha": sha}
    )
    keys = ["services.web.cap_add[0]", "services.web.privileged", "services.web.ports[0]"]
    for found in (user_errors, issues):
        assert [e["message"].split(": ")[1] for e in found] == keys
    assert await written(database) == (0, 0, 0)

    # The same checks accept what the policy allows: the control deploy is written.
    sha = git_server.commit("po-allowed", {"docker-compose.stack.yml": stack("volumes: [/srv]")})
    allowed = api.query(
        DEPLOY, {"input": {"repositoryUrl": git_server.url("po-allowed"), "commitSha": sha}}
    )["deploy"]
    assert allowed["userErrors"] == []
    assert allowed["deployment"]["state"] == "QUEUED"
    assert (await written(database))[0] == 1


async def test_source_refusals_before_the_source_is_read(
    database: Database, api: Client, git_server: GitServer, swarm: str, tmp_path: Path
) -> None:
    sha = git_server.commit("po-local", {"docker-compose.stack.yml": stack("")})
    path = git_server.path("po-local").resolve()
    for url in (str(path), path.as_uri()):
        user_errors, issues = refused(api, {"repositoryUrl": url, "commitSha": sha})
        for found in (user_errors, issues):
            assert [(e["code"], e["field"]) for e in found] == [
                ("POLICY_VIOLATION", "repositoryUrl")
            ]
            assert found[0]["message"].startswith(
                f"{path.as_uri()} is a repository on this server's filesystem"
            )
    assert await written(database) == (0, 0, 0)
    # The server never read it: its git mirror cache is empty.
    mirrors = tmp_path / "work" / "git"
    assert not mirrors.exists() or list(mirrors.iterdir()) == []

    allow = [*update(api, repositories=["*"])["deployPolicy"]["repositories"]]
    allow.append(f"{git_server.base_dir.resolve().as_uri()}/*")
    assert update(api, repositories=allow)["userErrors"] == []
    accepted = api.query(DEPLOY, {"input": {"repositoryUrl": str(path), "commitSha": sha}})
    assert accepted["deploy"]["userErrors"] == []
    assert (await written(database))[0] == 1

    # Patterns restrict remote repositories too, and registries restrict image deploys.
    sha = git_server.commit("po-pattern", {"docker-compose.stack.yml": stack("")})
    changed = update(api, repositories=["https://github.com/acme/*"], registries=["127.0.0.1:5000"])
    assert changed["userErrors"] == []

    user_errors, issues = refused(
        api, {"repositoryUrl": git_server.url("po-pattern"), "commitSha": sha}
    )
    for found in (user_errors, issues):
        assert [(e["code"], e["field"]) for e in found] == [("POLICY_VIOLATION", "repositoryUrl")]
        assert found[0]["message"] == (
            f"{git_server.url('po-pattern')} matches none of the allowed repositories"
            " (https://github.com/acme/*)"
        )

    user_errors, issues = refused(api, {"image": "docker.io/library/busybox:1.36"})
    for found in (user_errors, issues):
        assert [(e["code"], e["field"]) for e in found] == [("POLICY_VIOLATION", "image")]
        assert "comes from registry docker.io" in found[0]["message"]
    assert (await written(database))[0] == 1  # only the explicitly allowed one


@both_databases
async def test_admin_reads_and_edits_the_policy(
    database: Database, api: Client, empty_database_url: str, tmp_path: Path
) -> None:
    defaults = api.query(POLICY)["deployPolicy"]
    assert defaults == {
        "repositories": ["*"],
        "registries": ["*"],
        "bindMountPrefixes": [],
        "capabilities": [],
        "sysctls": [],
        "publishedPorts": [{"start": 1024, "end": 65535}],
        "allowDevices": False,
        "allowHostNamespaces": False,
        "allowPrivileged": False,
        "edited": False,
        "updatedAt": None,
        "updatedBy": None,
    }

    changed = update(
        api,
        bindMountPrefixes=["/srv/data/"],
        capabilities=["net_bind_service"],
        publishedPorts=[{"start": 80}, {"start": 8000, "end": 8999}],
        allowDevices=True,
        clientMutationId="m1",
    )
    assert changed["userErrors"] == [] and changed["clientMutationId"] == "m1"
    policy = changed["deployPolicy"]
    assert policy["bindMountPrefixes"] == ["/srv/data"]
    assert policy["capabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert policy["publishedPorts"] == [{"start": 80, "end": 80}, {"start": 8000, "end": 8999}]
    assert policy["allowDevices"] is True and policy["repositories"] == ["*"]
    assert policy["edited"] is True and policy["updatedBy"]  # the caller's label
    assert policy["updatedAt"] is not None
    assert api.query(POLICY)["deployPolicy"] == policy

    for bad, field in (
        ({"bindMountPrefixes": ["srv"]}, "bindMountPrefixes"),
        ({"publishedPorts": [{"start": 0, "end": 80}]}, "publishedPorts"),
        ({"publishedPorts": [{"start": 90, "end": 80}]}, "publishedPorts"),
        ({"capabilities": ["not a cap"]}, "capabilities"),
        ({"repositories": [""]}, "repositories"),
        ({"sysctls": ["a b"]}, "sysctls"),
    ):
        result = update(api, **bad)
        assert result["deployPolicy"] is None
        assert [(e["code"], e["field"]) for e in result["userErrors"]] == [
            ("INVALID_INPUT", field)
        ], bad
    assert api.query(POLICY)["deployPolicy"] == policy

    # Stored: another process on the same database (or this one restarted) sees the edit,
    # whatever its own settings say.
    other = ServerProcess(
        server_env(
            tmp_path / "other",
            DEPLOYBOT_DATABASE_URL=empty_database_url,
            DEPLOYBOT_POLICY_BIND_MOUNT_PREFIXES="/",
        ),
        _workdir(tmp_path / "other"),
        "--no-runner",
    )
    try:
        second = Client(other.url)
        assert second.query(POLICY)["deployPolicy"] == policy
        reset = second.query(UPDATE, {"input": {"reset": True}})["updateDeployPolicy"]
        assert reset["deployPolicy"]["edited"] is False
        assert reset["deployPolicy"]["bindMountPrefixes"] == ["/"]  # its own settings
        second.close()
    finally:
        other.stop()
    assert api.query(POLICY)["deployPolicy"] == defaults


def _workdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
