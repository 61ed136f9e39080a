"""The environment relay over three real instances (dev, staging, production; own SQLite
databases, each with its runner on the local Swarm, stacks named
`{environment}-{application}`) and one real `deploybot relay`."""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploybot.ids import decode_id
from tests.conftest import DOCKER, docker, remove_stack, server_env
from tests.fuzzing import fuzz
from tests.servers import Client, ServerProcess, auth_headers, free_port

ENVIRONMENTS = ("dev", "staging", "production")
COUNTS = {"dev": 25, "staging": 20, "production": 45}

RECORD = """mutation($input: RecordDeploymentInput!) {
  recordDeployment(input: $input) { deployment { id } userErrors { code message } } }"""
PAGE = """query($first: Int, $after: String, $last: Int, $before: String) {
  deployments(first: $first, after: $after, last: $last, before: $before) {
    totalCount edges { cursor node { id environment application createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""


class RelayProcess:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "relay.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploybot", "relay", "--port", str(self.port)],
            env={**os.environ, **env},
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(self.log_path.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


NAMESPACE = "{environment}-{application}"


def _instance(tmp: Path, environment: str, swarm: str, *, wait: bool = True) -> ServerProcess:
    home = tmp / environment
    home.mkdir(exist_ok=True)
    env = server_env(
        home,
        DEPLOYBOT_ENVIRONMENT=environment,
        DEPLOYBOT_DOCKER_HOST=swarm,
        DEPLOYBOT_STACK_NAMESPACE=NAMESPACE,
    )
    return ServerProcess(env, home, wait=wait)


TOKEN = """mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token } }"""


def _service_token(server: ServerProcess) -> str:
    admin = Client(server.url)
    data = admin.query(TOKEN, {"i": {"name": "relay", "scopes": ["read,deploy,record,relay"]}})
    admin.close()
    token: str = data["createApiToken"]["token"]
    return token


@pytest.fixture(scope="module")
def relay_setup(tmp_path_factory: pytest.TempPathFactory, swarm: str) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("relay")
    instances = {env: _instance(tmp, env, swarm, wait=False) for env in ENVIRONMENTS}
    for server in instances.values():  # each on its own database: started side by side
        server.ready()
    upstreams = {
        env: {"url": server.url, "token": _service_token(server), "timeout": 3}
        for env, server in instances.items()
    }
    home = tmp / "relay"
    home.mkdir()
    env = server_env(home, DEPLOYBOT_RELAY_ENVIRONMENTS=json.dumps(upstreams))
    relay = RelayProcess(env, home)
    tokens = {env: str(upstream["token"]) for env, upstream in upstreams.items()}
    yield {"relay": relay, "instances": instances, "tokens": tokens}
    relay.stop()
    for server in instances.values():
        server.stop()


def _walk(client: Client, forwards: bool, rng: random.Random) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        size = rng.randint(1, 23)
        args = {"first": size, "after": cursor} if forwards else {"last": size, "before": cursor}
        page = client.query(PAGE, args)["deployments"]
        ids = [e["node"]["id"] for e in page["edges"]]
        seen.extend(ids if forwards else reversed(ids))
        info = page["pageInfo"]
        if not (info["hasNextPage"] if forwards else info["hasPreviousPage"]):
            return seen
        cursor = info["endCursor"] if forwards else info["startCursor"]


def test_merged_paging(relay_setup: dict[str, Any]) -> None:
    relay: RelayProcess = relay_setup["relay"]
    client = Client(relay.url)
    plan = [env for env, n in COUNTS.items() for _ in range(n)]
    random.Random(7).shuffle(plan)
    for index, env in enumerate(plan):
        variables = {"application": f"rl-app{index % 3}", "version": f"1.{index}"}
        data = client.query(RECORD, {"input": {**variables, "environment": env}})
        assert data["recordDeployment"]["userErrors"] == []
    missing = client.query(RECORD, {"input": {"application": "rl-x", "version": "1"}})
    assert missing["recordDeployment"]["userErrors"][0]["code"] == "INVALID_INPUT"

    everything = client.query(PAGE, {"first": 100})["deployments"]
    assert everything["totalCount"] == sum(COUNTS.values())
    keys = [
        (e["node"]["createdAt"], e["node"]["environment"], e["node"]["id"])
        for e in everything["edges"]
    ]
    ids = [k[2] for k in keys]
    assert len(set(ids)) == len(ids) == sum(COUNTS.values())
    assert [k[:2] for k in keys] == sorted((k[:2] for k in keys), reverse=True)

    rng = random.Random(13)
    for _ in range(3):
        assert _walk(client, True, rng) == ids
        assert _walk(client, False, rng) == list(reversed(ids))


# --- aggregations ----------------------------------------------------------------------------

PUBLISH = """mutation($input: PublishReleaseInput!) {
  publishRelease(input: $input) { release { id } userErrors { code message } } }"""
RELEASES = """query($first: Int, $after: String, $order: ReleaseOrder) {
  releases(first: $first, after: $after, filter: {components: ["rl-comp"]}, orderBy: $order) {
    totalCount edges { cursor node { id version releasedAt } }
    pageInfo { hasNextPage endCursor } } }"""
LATEST = """query($by: LatestReleaseBy!) {
  latestRelease(component: "rl-comp", train: "stable", by: $by) { version id } }"""
METRICS = """query($envs: [String!]) {
  deliveryMetrics(filter: {applications: ["rl-metrics"], environments: $envs},
                  since: "2026-03-01T00:00:00Z", until: "2026-03-08T00:00:00Z", interval: WEEK) {
    total { deployments successfulDeployments leadTimeMedian leadTimeP90 } } }"""
CURRENT = """{ currentVersion(application: "rl-cv") { environment version deployment { id } } }"""

# (environment, version, released at): 1.0.0 reached every environment, 1.1.0 two of them.
PUBLISHED = [
    ("dev", "1.0.0", "2026-02-01T10:00:00Z"),
    ("staging", "1.0.0", "2026-02-01T12:00:00Z"),
    ("production", "1.0.0", "2026-02-02T09:00:00Z"),
    ("dev", "1.1.0", "2026-02-03T10:00:00Z"),
    ("staging", "1.1.0", "2026-02-04T10:00:00Z"),
    ("dev", "1.0.1", "2026-02-05T10:00:00Z"),
]
# lead times in hours (commit → end of deployment) per environment: the union's median
# (5) is not the average of the environments' medians ((1 + 6 + 20) / 3 = 9).
LEAD_HOURS = {"dev": [1, 1, 2], "staging": [5, 6, 7], "production": [20]}


def _version_where(release: dict[str, Any]) -> tuple[str, str]:
    """A release's version and the environment its ID names."""
    return release["version"], decode_id(release["id"]).environment


def test_aggregations(relay_setup: dict[str, Any]) -> None:
    relay: RelayProcess = relay_setup["relay"]
    instances: dict[str, ServerProcess] = relay_setup["instances"]
    client = Client(relay.url)
    direct = {env: Client(server.url) for env, server in instances.items()}
    for env, version, at in PUBLISHED:
        release = {"component": "rl-comp", "train": "stable", "version": version}
        payload = direct[env].query(PUBLISH, {"input": {**release, "releasedAt": at}})
        assert payload["publishRelease"]["userErrors"] == []

    # one entry per version, as its most recent release, in release-time order
    merged = client.query(RELEASES, {"first": 10})["releases"]
    assert merged["totalCount"] == 3
    listed = [_version_where(e["node"]) for e in merged["edges"]]
    assert listed == [("1.0.1", "dev"), ("1.1.0", "staging"), ("1.0.0", "production")]
    walked, cursor = [], None
    while True:
        page = client.query(RELEASES, {"first": 1, "after": cursor})["releases"]
        walked += [_version_where(e["node"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        cursor = page["pageInfo"]["endCursor"]
    assert walked == listed
    oldest = client.query(RELEASES, {"first": 10, "order": {"direction": "ASC"}})["releases"]
    assert [e["node"]["version"] for e in oldest["edges"]] == ["1.0.0", "1.1.0", "1.0.1"]
    by_time = client.query(LATEST, {"by": "RELEASED_AT"})["latestRelease"]
    assert _version_where(by_time) == ("1.0.1", "dev")
    by_semver = client.query(LATEST, {"by": "SEMANTIC_VERSION"})["latestRelease"]
    assert _version_where(by_semver) == ("1.1.0", "staging")

    # delivery metrics: computed on the union's own samples
    lead_times: list[float] = []
    for env, hours in LEAD_HOURS.items():
        for index, lead in enumerate(hours):
            finished = datetime(2026, 3, 2 + index, 12, tzinfo=UTC)
            record = {
                "application": "rl-metrics",
                "environment": env,
                "version": f"{env}-{index}",
                "committedAt": (finished - timedelta(hours=lead)).isoformat(),
                "finishedAt": finished.isoformat(),
            }
            data = client.query(RECORD, {"input": record})["recordDeployment"]
            assert data["userErrors"] == []
            lead_times.append(lead * 3600.0)
    total = client.query(METRICS)["deliveryMetrics"]["total"]
    ordered = sorted(lead_times)
    assert total == {
        "deployments": 7,
        "successfulDeployments": 7,
        "leadTimeMedian": statistics.median(ordered),
        "leadTimeP90": ordered[math.ceil(0.9 * len(ordered)) - 1],
    }
    assert total["leadTimeMedian"] == 5 * 3600.0
    medians = [
        direct[env].query(METRICS)["deliveryMetrics"]["total"]["leadTimeMedian"]
        for env in ENVIRONMENTS
    ]
    assert statistics.mean(medians) == 9 * 3600.0 != total["leadTimeMedian"]
    two = client.query(METRICS, {"envs": ["dev", "production"]})["deliveryMetrics"]["total"]
    assert two["deployments"] == 4 and two["leadTimeMedian"] == 1.5 * 3600.0

    # current versions: each environment's own answer
    for env, version in (("dev", "3.1"), ("production", "3.0")):
        record = {"application": "rl-cv", "environment": env, "version": version}
        assert client.query(RECORD, {"input": record})["recordDeployment"]["userErrors"] == []
    current = client.query(CURRENT)["currentVersion"]
    assert [(c["environment"], c["version"]) for c in current] == [
        ("dev", "3.1"),
        ("production", "3.0"),
    ]
    assert all(c["deployment"]["id"] for c in current)
    names = client.query("{ applications { name environment } }")["applications"]
    assert {("rl-cv", "dev"), ("rl-cv", "production")} <= {
        (a["name"], a["environment"]) for a in names
    }
    for c in [client, *direct.values()]:
        c.close()


# --- every other field answers typed -------------------------------------------------------

NOWHERE = "RGVwbG95bWVudDpzdGFnaW5nOjk5OTk5"  # Deployment:staging:99999
FIELDS: dict[str, tuple[str, str]] = {
    # field: (document, the code the relay answers; OK: an answer)
    "viewer": ("{ viewer { name environment scopes may(action: DEPLOY) } }", "OK"),
    "apiTokens": ("{ apiTokens { id name } }", "OK"),
    "auditEvents": ("{ auditEvents(first: 5) { nodes { id } } }", "OK"),
    "node": (f'{{ node(id: "{NOWHERE}") {{ id }} }}', "OK"),
    "validateDeployment": (
        '{ validateDeployment(input: {image: "x/y:1", application: "a"}) { valid } }',
        "INVALID_INPUT",
    ),
    "deployPolicy": ("{ deployPolicy { registries } }", "WRONG_ENVIRONMENT"),
    "secretsWithout": ('{ secrets(application: "a") { name } }', "INVALID_INPUT"),
    "secrets": ('{ secrets(application: "a", environment: "staging") { name } }', "FORBIDDEN"),
    "webhooks": ("{ webhooks { id } }", "WRONG_ENVIRONMENT"),
    "webhookDeliveries": ('{ webhookDeliveries(webhook: "1") { id } }', "WRONG_ENVIRONMENT"),
    "notificationTargets": ("{ notificationTargets { id } }", "WRONG_ENVIRONMENT"),
    "notificationDeliveries": (
        '{ notificationDeliveries(target: "1") { id } }',
        "WRONG_ENVIRONMENT",
    ),
    "deploy": (
        'mutation { deploy(input: {image: "x/y:1", application: "a"}) { userErrors { code } } }',
        "INVALID_INPUT",
    ),
    "rollback": (
        'mutation { rollback(input: {application: "a"}) { userErrors { code } } }',
        "INVALID_INPUT",
    ),
    "cancelDeployment": (
        f'mutation {{ cancelDeployment(input: {{id: "{NOWHERE}"}}) {{ userErrors {{ code }} }} }}',
        "DEPLOYMENT_NOT_FOUND",
    ),
    "reportDeploymentStatus": (
        f'mutation {{ reportDeploymentStatus(input: {{id: "{NOWHERE}", state: SUCCESS}}) '
        "{ userErrors { code } } }",
        "DEPLOYMENT_NOT_FOUND",
    ),
    "addDeploymentResult": (
        f'mutation {{ addDeploymentResult(input: {{id: "{NOWHERE}", result: {{}}}}) '
        "{ userErrors { code } } }",
        "DEPLOYMENT_NOT_FOUND",
    ),
    "addDeploymentServices": (
        f'mutation {{ addDeploymentServices(input: {{id: "{NOWHERE}", services: '
        '[{name: "web"}]}) { userErrors { code } } }',
        "DEPLOYMENT_NOT_FOUND",
    ),
    "publishRelease": (
        'mutation { publishRelease(input: {component: "c", train: "t", version: "1", '
        'releasedAt: "2026-01-01T00:00:00Z"}) { userErrors { code } } }',
        "WRONG_ENVIRONMENT",
    ),
    "updateDeployPolicy": (
        "mutation { updateDeployPolicy(input: {registries: []}) { userErrors { code } } }",
        "WRONG_ENVIRONMENT",
    ),
    "setSecret": (
        'mutation { setSecret(input: {application: "a", name: "n", value: "v", '
        'environment: "staging"}) { userErrors { code } } }',
        "FORBIDDEN",
    ),
    "deleteSecret": (
        'mutation { deleteSecret(input: {application: "a", name: "n"}) { userErrors { code } } }',
        "INVALID_INPUT",
    ),
    "revokeApiToken": (
        'mutation { revokeApiToken(input: {id: "99999"}) { userErrors { code } } }',
        "TOKEN_NOT_FOUND",
    ),
    "createWebhook": (
        'mutation { createWebhook(input: {provider: GITHUB, repository: "o/r", '
        'application: "a"}) { userErrors { code } } }',
        "WRONG_ENVIRONMENT",
    ),
    "updateWebhook": (
        'mutation { updateWebhook(input: {id: "1"}) { userErrors { code } } }',
        "WRONG_ENVIRONMENT",
    ),
    "deleteWebhook": (
        'mutation { deleteWebhook(input: {id: "1"}) { userErrors { code } } }',
        "WRONG_ENVIRONMENT",
    ),
    "createNotificationTarget": (
        'mutation { createNotificationTarget(input: {url: "http://127.0.0.1:9/"}) '
        "{ userErrors { code } } }",
        "WRONG_ENVIRONMENT",
    ),
    "deleteNotificationTarget": (
        'mutation { deleteNotificationTarget(input: {id: "1"}) { userErrors { code } } }',
        "WRONG_ENVIRONMENT",
    ),
}


def _code(body: dict[str, Any]) -> str:
    """The answer's code: its first error's (a GraphQL error or a userError), else OK."""
    for error in body.get("errors") or []:
        assert "Internal server error" not in error["message"], error
        return str(error["extensions"]["code"])
    for value in (body.get("data") or {}).values():
        if isinstance(value, dict) and value.get("userErrors"):
            return str(value["userErrors"][0]["code"])
    return "OK"


def test_every_field_answers_typed(relay_setup: dict[str, Any]) -> None:
    relay: RelayProcess = relay_setup["relay"]
    client = Client(relay.url)
    answered = {name: _code(client.execute(document)) for name, (document, _) in FIELDS.items()}
    assert answered == {name: code for name, (_, code) in FIELDS.items()}
    message = client.execute("{ deployPolicy { registries } }")["errors"][0]["message"]
    assert "ask the environment's instance (dev, production, staging)" in message

    # the relay's own tokens: made here, listed here, used here, revoked here
    made = client.query(TOKEN, {"i": {"name": "rl-reader", "scopes": ["read"]}})
    reader = Client(relay.url, made["createApiToken"]["token"])
    viewer = reader.query("{ viewer { name environment scopes } }")["viewer"]
    assert viewer["environment"] == "*" and viewer["scopes"] == ["read:*/*"]
    assert "rl-reader" in [t["name"] for t in client.query("{ apiTokens { name } }")["apiTokens"]]
    assert reader.execute("{ apiTokens { name } }")["errors"][0]["extensions"]["code"] == (
        "FORBIDDEN"
    )
    findings = fuzz(relay.url, examples=80, headers=auth_headers(reader.token), seed=3)
    assert findings.sent >= 50
    assert findings.problems == [], "\n\n".join(f"{d}\n-> {p}" for d, p in findings.problems[:5])
    reader.close()
    client.close()


# --- deploys through the relay onto the Swarm, and a token scoped to one environment --------

DEPLOY = """mutation($input: DeployInput!) {
  deploy(input: $input) { deployment { id environment } userErrors { code message } } }"""
STATE = """query($id: ID!) { deployment(id: $id) {
  state errorCode errorMessage services { swarmName } } }"""
ENVIRONMENTS_SEEN = "{ deployments(first: 100) { totalCount nodes { environment } } }"


def _sleeper_image(registry: str) -> str:
    """A tiny image in the shared registry (built from the local base image, pushed)."""
    image = f"{registry}/relay/sleeper:1"
    subprocess.run(
        [DOCKER, "build", "-q", "-t", image, "-"],
        input=b'FROM deploybot/busybox:latest\nCMD ["sleep", "3600"]\n',
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run([DOCKER, "push", "-q", image], check=True, capture_output=True, timeout=120)
    return image


def _wait_final(client: Client, deployment_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = client.query(STATE, {"id": deployment_id})["deployment"]
        if found["state"] not in ("QUEUED", "IN_PROGRESS"):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)


def _rpc(setup: dict[str, Any], env: str, method: str, *, grants: str) -> dict[str, Any]:
    """A relay's call of an instance's backend, forwarding a caller with `grants`."""
    answer = httpx.post(
        f"{setup['instances'][env].url}/relay/rpc/{method}",
        json={"filter": None, "since": "2026-03-01T00:00:00Z", "until": "2026-03-08T00:00:00Z"},
        headers={
            "authorization": f"Bearer {setup['tokens'][env]}",
            "x-deploybot-on-behalf-of": "rl-test",
            "x-deploybot-forwarded-grants": grants,
        },
    )
    body: dict[str, Any] = answer.json()
    return body


def test_scoped_token_and_deploys_on_the_swarm(relay_setup: dict[str, Any], registry: str) -> None:
    relay: RelayProcess = relay_setup["relay"]
    admin = Client(relay.url)
    made = admin.query(TOKEN, {"i": {"name": "rl-staging", "scopes": ["read,deploy:staging"]}})
    staging = Client(relay.url, made["createApiToken"]["token"])
    image = _sleeper_image(registry)
    stacks = ("staging-rl-sleep", "production-rl-sleep")
    for stack in stacks:
        remove_stack(stack)
    try:
        seen = staging.query(ENVIRONMENTS_SEEN)["deployments"]
        only = '{ deployments(filter: {environments: ["staging"]}) { totalCount } }'
        assert seen["totalCount"] == admin.query(only)["deployments"]["totalCount"] >= 20
        assert {n["environment"] for n in seen["nodes"]} == {"staging"}

        app = {"image": image, "application": "rl-sleep", "service": "app"}
        refused = staging.query(DEPLOY, {"input": {**app, "environment": "production"}})
        assert refused["deploy"]["deployment"] is None
        assert [e["code"] for e in refused["deploy"]["userErrors"]] == ["FORBIDDEN"]
        queued = {
            "staging": staging.query(DEPLOY, {"input": {**app, "environment": "staging"}}),
            "production": admin.query(DEPLOY, {"input": {**app, "environment": "production"}}),
        }
        for env, payload in queued.items():
            assert payload["deploy"]["userErrors"] == [], payload
            assert payload["deploy"]["deployment"]["environment"] == env
            done = _wait_final(admin, payload["deploy"]["deployment"]["id"])
            assert done["state"] == "SUCCESS", done
            assert done["services"] == [{"swarmName": f"{env}-rl-sleep_app"}]
        # the samples behind deliveryMetrics: checked on the instance like the metrics
        metrics = staging.query(METRICS)["deliveryMetrics"]["total"]
        assert metrics["deployments"] == len(LEAD_HOURS["staging"])
        for env, expected in (("staging", "answer"), ("production", "error")):
            body = _rpc(relay_setup, env, "delivery_samples", grants="read,deploy:staging")
            assert expected in body, body
            if expected == "error":
                assert body["error"]["code"] == "FORBIDDEN"
        services = docker("service", "ls", "--format", "{{.Name}}").split()
        assert {"staging-rl-sleep_app", "production-rl-sleep_app"} <= set(services)
        assert "rl-sleep_app" not in services
    finally:
        for stack in stacks:
            remove_stack(stack)
        staging.close()
        admin.close()


# --- one environment down, then back ----------------------------------------------------------


def test_environment_down_and_back(relay_setup: dict[str, Any]) -> None:
    relay: RelayProcess = relay_setup["relay"]
    staging_server: ServerProcess = relay_setup["instances"]["staging"]
    client = Client(relay.url)
    before = {
        "count": client.query("{ deployments(first: 1) { totalCount } }"),
        "releases": client.query(RELEASES, {"first": 10}),
        "metrics": client.query(METRICS),
    }
    staging_server.stop()
    try:
        answer = client.execute(PAGE, {"first": 100})
        edges = answer["data"]["deployments"]["edges"]
        assert {e["node"]["environment"] for e in edges} == {"dev", "production"}
        errors = {
            (e["extensions"]["code"], e["extensions"].get("environment")) for e in answer["errors"]
        }
        assert errors == {("ENVIRONMENT_UNAVAILABLE", "staging")}
        for document in (RELEASES, METRICS, CURRENT, "{ applications { name } }"):
            partial = client.execute(document, {"first": 10} if document == RELEASES else None)
            assert partial["data"] is not None
            assert [e["extensions"]["code"] for e in partial["errors"]] == [
                "ENVIRONMENT_UNAVAILABLE"
            ]
            assert "'staging'" in partial["errors"][0]["message"]
        metrics = client.execute(METRICS)["data"]["deliveryMetrics"]["total"]
        assert metrics["deployments"] == 4  # dev's 3 and production's 1
        releases = client.execute(RELEASES, {"first": 10})["data"]["releases"]["edges"]
        assert [_version_where(e["node"]) for e in releases] == [
            ("1.0.1", "dev"),
            ("1.1.0", "dev"),  # staging's twin is out of reach: dev's stands for it
            ("1.0.0", "production"),
        ]
        routed = client.query(
            RECORD, {"input": {"application": "rl-y", "version": "1", "environment": "staging"}}
        )["recordDeployment"]
        assert routed["userErrors"][0]["code"] == "ENVIRONMENT_UNAVAILABLE"
        assert "staging" in routed["userErrors"][0]["message"]
    finally:
        staging_server.restart()
    after = {
        "count": client.query("{ deployments(first: 1) { totalCount } }"),
        "releases": client.query(RELEASES, {"first": 10}),
        "metrics": client.query(METRICS),
    }
    assert after == before
    routed = client.query(
        RECORD, {"input": {"application": "rl-y", "version": "1", "environment": "staging"}}
    )["recordDeployment"]
    assert routed["userErrors"] == []
    client.close()
