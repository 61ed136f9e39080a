"""End to end on the real Swarm: configs, secrets and env files from the deployed commit,
a secret deploybot keeps, content-named versions that roll out, roll back and are cleaned
up, refusals before anything changes, and no kept secret value anywhere it must not be."""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DOCKER, docker, remove_stack, server_env, service_inspect
from tests.e2e.test_deploy_swarm import outcome
from tests.e2e.test_rollback import DEPLOY, ROLLBACK, deployed
from tests.gitserver import GitServer
from tests.servers import AUTH_HEADERS, Client, ServerProcess

APP = "se-app"
STACK_FILE = "deploy/stack.yml"
SET_SECRET = """mutation($input: SetSecretInput!) { setSecret(input: $input) {
  userErrors { field message code } secret { application environment name version stackName
  createdAt updatedAt } } }"""
DELETE_SECRET = """mutation($input: DeleteSecretInput!) { deleteSecret(input: $input) {
  userErrors { field message code } deletedSecret { name version } } }"""
SECRETS = "query($app: String!) { secrets(application: $app) { name version updatedAt } }"
VALIDATE = """query($input: DeployInput!) { validateDeployment(input: $input) {
  valid issues { field message severity code } } }"""
COUNT = "{ deployments { totalCount } }"
EVERYTHING = """{ deployments(first: 40) { nodes { number state version errorMessage
  originalRequest mappedRequest description logsUrl
  steps { name message error } services { service image state }
  logs(first: 1000) { nodes { text } } } } }"""

STACK = """version: "3.8"
services:
  app:
    image: deploybot/busybox:latest
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      update_config:
        monitor: 1s  # Swarm's 5 s default: 4 s more per update
    env_file: [app.env]
    environment:
      OVERRIDE: from-stack
    configs:
      - source: app_conf
        target: /etc/app/app.conf
        mode: 0440
    secrets:
      - api_key
      - source: db_password
        uid: "100"
        gid: "101"
        mode: 0400
configs:
  app_conf:
    file: ./conf/app.conf
    labels:
      purpose: test
secrets:
  api_key:
    file: ./secrets/api_key.txt
  db_password:
    external: true
    name: deploybot.db_password
"""
BROKEN = STACK.replace(
    "      - api_key\n",
    "      - api_key\n      - se_missing_external\n      - nope\n      - never_set\n",
).replace(
    "secrets:\n  api_key:",
    "secrets:\n  se_missing_external:\n    external: true\n"
    "  nope:\n    file: ./secrets/nope.txt\n"
    "  never_set:\n    external: true\n    name: deploybot.never_set\n  api_key:",
)


def _exec(command: str) -> str:
    """Run `command` in the app's running task container."""
    deadline = time.monotonic() + 60
    while True:
        ids = docker(
            "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={APP}_app"
        ).split()
        if len(ids) == 1:
            result = subprocess.run(
                [DOCKER, "exec", ids[0], "sh", "-c", command],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if result.returncode == 0:
                return result.stdout.strip()
        assert time.monotonic() < deadline, f"no single running task of {APP}_app: {ids}"
        time.sleep(0.2)


def _wait_content(path: str, expected: str) -> None:
    """The old task stops after the new one runs: wait until only the new one is left."""
    deadline = time.monotonic() + 60
    while (seen := _exec(f"cat {path}")) != expected:
        assert time.monotonic() < deadline, f"{path}: {seen!r}, expected {expected!r}"
        time.sleep(0.2)


def _objects(kind: str) -> set[str]:
    out = docker(
        kind, "ls", "--format", "{{.Name}}", "--filter", f"label=com.docker.stack.namespace={APP}"
    )
    return set(out.split())


def _remove_objects() -> None:
    for kind in ("config", "secret"):
        for name in _objects(kind):
            subprocess.run([DOCKER, kind, "rm", name], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def server(
    swarm: str, registry: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Its own server: one rollback target's configs and secrets are kept."""
    tmp = tmp_path_factory.mktemp("se-server")
    env = server_env(
        tmp,
        DEPLOYBOT_DOCKER_HOST=swarm,
        DEPLOYBOT_REGISTRY=registry,
        DEPLOYBOT_KEPT_OBJECT_VERSIONS="1",
    )
    proc = ServerProcess(env, tmp)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[Client]:
    c = Client(server.url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def repo(git_server: GitServer) -> Iterator[dict[str, Any]]:
    remove_stack(APP)
    _remove_objects()
    git_server.create_repo(APP)
    base = {
        STACK_FILE: STACK,
        "deploy/app.env": "# settings\nGREETING=hello\nOVERRIDE=from-env-file\n",
        "deploy/secrets/api_key.txt": "api-key-from-git\n",
    }
    shas = {
        "a": git_server.commit(APP, {**base, "deploy/conf/app.conf": "conf A\n"}),
        "b": git_server.commit(APP, {"deploy/conf/app.conf": "conf B\n"}),
        "c": git_server.commit(APP, {"deploy/conf/app.conf": "conf C\n"}),
        "broken": git_server.commit(APP, {STACK_FILE: BROKEN}),
    }
    values = {"v1": f"pw-{secrets.token_hex(12)}", "v2": f"pw-{secrets.token_hex(12)}"}
    yield {"url": git_server.url(APP), **shas, **values}
    remove_stack(APP)
    time.sleep(2)  # tasks release their configs and secrets
    _remove_objects()


def _deploy(api: Client, repo: dict[str, Any], sha: str) -> dict[str, Any]:
    return deployed(
        api, DEPLOY, repositoryUrl=repo["url"], commitSha=repo[sha], stackFile=STACK_FILE
    )


def test_kept_secret_is_set_and_listed_without_its_value(
    api: Client, repo: dict[str, Any], server: ServerProcess
) -> None:
    input = {"application": APP, "name": "db_password", "value": repo["v1"]}
    answer = api.execute(SET_SECRET, {"input": input})
    assert repo["v1"] not in json.dumps(answer)
    secret = answer["data"]["setSecret"]["secret"]
    assert secret["version"] == 1 and secret["stackName"] == "deploybot.db_password"
    assert api.query(SECRETS, {"app": APP})["secrets"][0]["name"] == "db_password"
    key_file = server.workdir / "work" / "secrets.key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    bad = api.query(SET_SECRET, {"input": {**input, "name": "-bad name-"}})["setSecret"]
    assert [e["code"] for e in bad["userErrors"]] == ["INVALID_INPUT"]
    assert repo["v1"] not in json.dumps(bad)
    gone = api.query(DELETE_SECRET, {"input": {"application": APP, "name": "nothing"}})
    assert gone["deleteSecret"]["userErrors"][0]["code"] == "SECRET_NOT_FOUND"


def test_the_task_sees_configs_secrets_and_env_files(api: Client, repo: dict[str, Any]) -> None:
    done = _deploy(api, repo, "a")
    assert done["state"] == "SUCCESS", outcome(done)
    repo["a_number"] = done["number"]

    assert _exec("cat /etc/app/app.conf") == "conf A"
    assert _exec("stat -c '%u %g %a' /etc/app/app.conf") == "0 0 440"
    assert _exec("cat /run/secrets/api_key") == "api-key-from-git"
    assert _exec("stat -c '%a' /run/secrets/api_key") == "444"
    assert _exec("cat /run/secrets/db_password") == repo["v1"]
    assert _exec("stat -c '%u %g %a' /run/secrets/db_password") == "100 101 400"
    assert _exec("echo $GREETING $OVERRIDE") == "hello from-stack"

    spec = service_inspect(f"{APP}_app")["Spec"]
    container = spec["TaskTemplate"]["ContainerSpec"]  # type: ignore[index]
    (config,) = container["Configs"]
    assert config["ConfigName"].startswith(f"{APP}_app_conf-")
    assert config["File"] == {"Name": "/etc/app/app.conf", "UID": "0", "GID": "0", "Mode": 0o440}
    names = [s["SecretName"] for s in container["Secrets"]]
    assert names[0].startswith(f"{APP}_api_key-")
    assert names[1].startswith(f"{APP}_deploybot.db_password-")
    labels = json.loads(docker("config", "inspect", config["ConfigName"]))[0]["Spec"]["Labels"]
    assert labels["purpose"] == "test" and labels["com.docker.stack.namespace"] == APP


def test_changed_config_rolls_out_and_rollback_restores_it(
    api: Client, repo: dict[str, Any]
) -> None:
    before = _objects("config")
    done = _deploy(api, repo, "b")
    assert done["state"] == "SUCCESS", outcome(done)  # docker stack deploy fails here
    repo["b_number"] = done["number"]
    _wait_content("/etc/app/app.conf", "conf B")
    assert len(_objects("config") - before) == 1
    repo["b_config"] = (_objects("config") - before).pop()

    back = deployed(api, ROLLBACK, application=APP, deploymentId=str(repo["a_number"]))
    assert back["state"] == "SUCCESS", outcome(back)
    _wait_content("/etc/app/app.conf", "conf A")
    assert _exec("cat /run/secrets/db_password") == repo["v1"]


def test_rotation_and_unused_versions_removed(api: Client, repo: dict[str, Any]) -> None:
    a_config = service_inspect(f"{APP}_app")["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"]  # type: ignore[index]
    rotated = api.query(
        SET_SECRET, {"input": {"application": APP, "name": "db_password", "value": repo["v2"]}}
    )["setSecret"]
    assert rotated["secret"]["version"] == 2
    done = _deploy(api, repo, "c")
    assert done["state"] == "SUCCESS", outcome(done)
    _wait_content("/etc/app/app.conf", "conf C")
    _wait_content("/run/secrets/db_password", repo["v2"])

    # Kept: C's (running) and A's (the rollback, the one rollback target kept); B's is gone.
    configs = _objects("config")
    assert repo["b_config"] not in configs
    assert a_config[0]["ConfigName"] in configs
    assert len(configs) == 2, configs
    kept = {n for n in _objects("secret") if "deploybot.db_password" in n}
    assert len(kept) == 2, kept  # v1 (the rollback target's) and v2

    # B's config is gone: a rollback to B is refused before anything is queued.
    count = api.query(COUNT)["deployments"]["totalCount"]
    refused = api.query(
        ROLLBACK, {"input": {"application": APP, "deploymentId": str(repo["b_number"])}}
    )["rollback"]
    assert [e["code"] for e in refused["userErrors"]] == ["BACKUP_NOT_FOUND"]
    assert repo["b_config"] in refused["userErrors"][0]["message"]
    assert api.query(COUNT)["deployments"]["totalCount"] == count


def test_missing_external_secret_and_file_refused_before_anything_changes(
    api: Client, repo: dict[str, Any]
) -> None:
    version = service_inspect(f"{APP}_app")["Version"]
    count = api.query(COUNT)["deployments"]["totalCount"]
    input = {"repositoryUrl": repo["url"], "commitSha": repo["broken"], "stackFile": STACK_FILE}

    report = api.query(VALIDATE, {"input": input})["validateDeployment"]
    assert report["valid"] is False
    errors = [i for i in report["issues"] if i["severity"] == "ERROR"]
    assert {e["code"] for e in errors} == {"INVALID_DEPLOYMENT_SPEC"}
    assert any("se_missing_external" in e["message"] for e in errors), errors
    assert any("deploy/secrets/nope.txt" in e["message"] for e in errors), errors
    assert any("no kept secret 'never_set'" in e["message"] for e in errors), errors
    assert len(errors) == 3, errors

    payload = api.query(DEPLOY, {"input": input})["deploy"]
    assert payload["deployment"] is None
    assert len(payload["userErrors"]) == 3, payload["userErrors"]
    assert api.query(COUNT)["deployments"]["totalCount"] == count
    assert service_inspect(f"{APP}_app")["Version"] == version


def _files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file())


def test_no_kept_secret_value_anywhere(
    api: Client, repo: dict[str, Any], server: ServerProcess
) -> None:
    values = [repo["v1"], repo["v2"]]
    everything = api.query(EVERYTHING)
    texts = [json.dumps(everything), json.dumps(api.query(SECRETS, {"app": APP}))]
    for node in everything["deployments"]["nodes"]:
        texts.append(httpx.get(node["logsUrl"], timeout=10, headers=AUTH_HEADERS).text)
    texts.append(server.log())
    texts.append(docker("service", "inspect", f"{APP}_app"))
    for text in texts:
        for value in values:
            assert value not in text
    # The database (and its WAL), the key file, the git mirrors, the server log: no file
    # under the server's directory holds a value in clear.
    for path in _files(server.workdir):
        data = path.read_bytes()
        for value in values:
            assert value.encode() not in data, path
    with sqlite3.connect(server.workdir / "deploybot.db", timeout=30) as db:
        rows = db.execute("SELECT name, version, ciphertext FROM kept_secret").fetchall()
    # nonce (12 bytes) + ciphertext + GCM tag (16 bytes)
    assert [(n, v, len(c)) for n, v, c in rows] == [("db_password", 2, 12 + len(values[1]) + 16)]
