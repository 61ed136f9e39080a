"""GitHub webhooks through a running server (no runner): configuration over GraphQL,
signature checks, de-duplication, the answers for every kind of request, and what the
deployment records. The deploys stay QUEUED here; tests/e2e runs them on the Swarm."""

from __future__ import annotations

import itertools

import httpx
import pytest

from tests.conftest import both_databases
from tests.servers import Client
from tests.webhooks.hooks import (
    DELIVERIES,
    DEPLOYMENT,
    body_of,
    create_hook,
    github_headers,
    github_push,
    payload,
)

SHA = "a" * 40
_numbers = itertools.count(1)


def make_hook(client: Client, repository: str, application: str) -> dict[str, object]:
    return create_hook(
        client,
        provider="GITHUB",
        repository=repository,
        application=application,
        repositoryUrl="git://127.0.0.1:1/hello.git",
        branches=["main", "release/*"],
        tags=["v*"],
    )


@pytest.fixture
def hook(api: Client) -> dict[str, object]:
    return make_hook(api, "Codertocat/Hello-World", "hello")


@pytest.fixture
def shared_hook(hooks_api: Client) -> dict[str, object]:
    """A hook of its own on the package's server: repository Codertocat/Hello-<n>."""
    n = next(_numbers)
    made = make_hook(hooks_api, f"Codertocat/Hello-{n}", f"wh-gh-{n}")
    made["repository"] = f"Codertocat/Hello-{n}"
    made["application"] = f"wh-gh-{n}"
    return made


def count(client: Client, application: str) -> int:
    query = "query($a: String!) { deployments(filter: {applications: [$a]}) { totalCount } }"
    total: int = client.query(query, {"a": application})["deployments"]["totalCount"]
    return total


def post(api: Client, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return api.http.post(path, content=body, headers=headers)


@both_databases
def test_signed_push_queues_a_deployment_recording_where_it_came_from(
    api: Client, hook: dict[str, object]
) -> None:
    secret = str(hook["secret"])
    path = str(hook["webhook"]["path"])  # type: ignore[index]
    assert path == f"/hooks/github/{hook['webhook']['number']}"  # type: ignore[index]
    assert str(hook["url"]).endswith(path)
    body = body_of(github_push("Codertocat/Hello-World", SHA))
    headers = github_headers(secret, body, delivery="72d3162e-cc78-11ec-9d64-0242ac120002")

    answer = post(api, path, body, headers)
    assert answer.status_code == 202, answer.text
    made = answer.json()["deployment"]
    assert made["state"] == "QUEUED"
    assert made["url"].endswith(f"/github/Codertocat/Hello-World/deployment/{made['number']}")
    found = api.query(DEPLOYMENT, {"id": made["id"]})["deployment"]
    assert found["trigger"] == "WEBHOOK"
    assert found["provider"] == "github"
    assert found["actor"] == "Codertocat"
    assert found["commitSha"] == SHA
    assert found["ref"] == "main"
    assert found["version"] == SHA[:7]
    assert found["repositoryUrl"] == "git://127.0.0.1:1/hello.git"
    assert found["description"] == "Update README.md"
    original = found["originalRequest"]
    assert original["headers"]["x-github-event"] == "push"
    assert original["headers"]["x-github-delivery"] == "72d3162e-cc78-11ec-9d64-0242ac120002"
    assert "x-hub-signature-256" not in original["headers"]
    assert original["payload"]["pusher"]["name"] == "Codertocat"
    assert found["mappedRequest"]["commitSha"] == SHA
    assert found["mappedRequest"]["application"] == "hello"
    assert found["mappedRequest"]["queue"] is True

    # GitHub's "Redeliver": the same delivery id answers the same deployment.
    again = post(api, path, body, headers)
    assert again.status_code == 202
    assert again.json()["duplicate"] is True
    assert again.json()["deployment"]["number"] == made["number"]
    deliveries = api.query(DELIVERIES, {"id": hook["webhook"]["id"]})["webhookDeliveries"]  # type: ignore[index]
    assert len(deliveries) == 1
    assert deliveries[0]["outcome"] == "DEPLOYED"
    assert deliveries[0]["reason"] == f"deployed #{made['number']}"
    assert deliveries[0]["deployment"]["number"] == made["number"]
    assert deliveries[0]["deliveryId"] == "292430182:72d3162e-cc78-11ec-9d64-0242ac120002"

    # Seed 000's provider views list it; another provider's or repository's do not.
    listed = api.http.get("/github/Codertocat/Hello-World/deployments")
    assert [d["id"] for d in listed.json()] == [made["number"]]
    assert api.http.get("/gitlab/Codertocat/Hello-World/deployments").json() == []
    assert api.http.get("/github/Codertocat/Other/deployments").json() == []
    assert api.http.get("/github/Codertocat/Hello-World/deployments?first=0").status_code == 400
    one = api.http.get(f"/github/Codertocat/Hello-World/deployment/{made['number']}").json()
    assert one["original_mapped_request"]["commitSha"] == SHA
    assert one["original_request"]["payload"]["after"] == SHA
    # Seed 000's Provider API: the payload posted to the repository's route.
    via_repo = post(api, "/github/Codertocat/Hello-World/deploy", body, headers)
    assert via_repo.status_code == 202
    assert via_repo.json()["deployment"]["number"] == made["number"]
    no_hook = post(api, "/github/Nobody/Nothing/deploy", body, headers)
    assert no_hook.status_code == 404


def test_forged_unknown_oversized_and_malformed_requests(
    hooks_api: Client, shared_hook: dict[str, object]
) -> None:
    repository, application = str(shared_hook["repository"]), str(shared_hook["application"])
    secret = str(shared_hook["secret"])
    path = str(shared_hook["webhook"]["path"])  # type: ignore[index]
    body = body_of(github_push(repository, SHA))

    forged = post(hooks_api, path, body, github_headers("not-the-secret-at-all", body))
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "SIGNATURE_INVALID"
    unsigned = github_headers(secret, body)
    del unsigned["X-Hub-Signature-256"]
    assert post(hooks_api, path, body, unsigned).status_code == 401
    tampered = body.replace(b"Update README.md", b"Update README.mD")
    assert post(hooks_api, path, tampered, github_headers(secret, body)).status_code == 401
    deliveries = hooks_api.query(DELIVERIES, {"id": shared_hook["webhook"]["id"]})[
        "webhookDeliveries"
    ]  # type: ignore[index]
    assert deliveries == []  # nothing written for a forged request
    assert count(hooks_api, application) == 0

    missing = post(hooks_api, "/hooks/github/999999", body, github_headers(secret, body))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "WEBHOOK_NOT_FOUND"
    assert (
        post(hooks_api, "/hooks/nowhere/1", body, github_headers(secret, body)).status_code == 404
    )
    other_provider = path.replace("/github/", "/gitlab/")
    assert post(hooks_api, other_provider, body, github_headers(secret, body)).status_code == 404

    not_json = b"{not json"
    bad = post(hooks_api, path, not_json, github_headers(secret, not_json))
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "PAYLOAD_INVALID"
    no_after = body_of({"ref": "refs/heads/main", "repository": {"full_name": "x/y"}})
    assert post(hooks_api, path, no_after, github_headers(secret, no_after)).status_code == 400

    # Over 25 MB: refused from Content-Length, before the body is read.
    huge = b"x" * (25 * 1024 * 1024 + 1)
    too_large = post(hooks_api, path, huge, github_headers(secret, b""))
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_events_that_deploy_nothing_answer_200_with_their_reason(
    hooks_api: Client, shared_hook: dict[str, object]
) -> None:
    repository, application = str(shared_hook["repository"]), str(shared_hook["application"])
    secret = str(shared_hook["secret"])
    path = str(shared_hook["webhook"]["path"])  # type: ignore[index]

    ping = body_of(payload("github-ping.json"))
    answer = post(hooks_api, path, ping, github_headers(secret, ping, event="ping"))
    assert answer.status_code == 200
    assert answer.json()["delivery"]["outcome"] == "IGNORED"
    assert "ping" in answer.json()["delivery"]["reason"]

    other = body_of(github_push(repository, SHA, ref="refs/heads/feature-x"))
    answer = post(hooks_api, path, other, github_headers(secret, other))
    assert answer.status_code == 200
    assert "branch 'feature-x' is not configured" in answer.json()["delivery"]["reason"]

    elsewhere = body_of(github_push("Someone/Else", SHA))
    answer = post(hooks_api, path, elsewhere, github_headers(secret, elsewhere))
    assert answer.status_code == 200
    assert "is not this hook's" in answer.json()["delivery"]["reason"]

    deleted = github_push(repository, "0" * 40)
    deleted["deleted"] = True
    deleted_body = body_of(deleted)
    answer = post(hooks_api, path, deleted_body, github_headers(secret, deleted_body))
    assert answer.status_code == 200
    assert "deleted" in answer.json()["delivery"]["reason"]

    deployment = payload("github-deployment.json")
    deployment["repository"]["full_name"] = repository
    deployment["deployment"]["environment"] = "production"
    dep_body = body_of(deployment)
    answer = post(hooks_api, path, dep_body, github_headers(secret, dep_body, event="deployment"))
    assert answer.status_code == 200
    assert "this instance serves 'test'" in answer.json()["delivery"]["reason"]

    assert count(hooks_api, application) == 0
    deliveries = hooks_api.query(DELIVERIES, {"id": shared_hook["webhook"]["id"]})[
        "webhookDeliveries"
    ]  # type: ignore[index]
    assert [d["outcome"] for d in deliveries] == ["IGNORED"] * 5
    assert deliveries[-1]["event"] == "ping"
    assert deliveries[-1]["payload"]["zen"]


def test_tag_push_and_deployment_event_deploy(
    hooks_api: Client, shared_hook: dict[str, object]
) -> None:
    repository = str(shared_hook["repository"])
    secret = str(shared_hook["secret"])
    path = str(shared_hook["webhook"]["path"])  # type: ignore[index]
    tag = body_of(github_push(repository, "b" * 40, ref="refs/tags/v1.2.0"))
    answer = post(hooks_api, path, tag, github_headers(secret, tag))
    assert answer.status_code == 202, answer.text
    found = hooks_api.query(DEPLOYMENT, {"id": answer.json()["deployment"]["id"]})["deployment"]
    assert (found["ref"], found["version"], found["commitSha"]) == ("v1.2.0", "v1.2.0", "b" * 40)

    deployment = payload("github-deployment.json")
    deployment["repository"]["full_name"] = repository
    deployment["deployment"]["environment"] = "test"
    deployment["deployment"]["sha"] = "c" * 40
    dep_body = body_of(deployment)
    answer = post(hooks_api, path, dep_body, github_headers(secret, dep_body, event="deployment"))
    assert answer.status_code == 202, answer.text
    found = hooks_api.query(DEPLOYMENT, {"id": answer.json()["deployment"]["id"]})["deployment"]
    assert found["commitSha"] == "c" * 40
    assert found["actor"] == "Codertocat"
    # Both queued one behind the other (hooks queue by default).
    assert found["state"] == "QUEUED"


def test_configuration_is_validated_and_the_secret_is_shown_once(hooks_api: Client) -> None:
    bad = hooks_api.query(
        """mutation { createWebhook(input: {provider: GITHUB, repository: "", application: "Bad!"})
        { webhook { id } secret userErrors { field code } } }"""
    )["createWebhook"]
    assert bad["webhook"] is None and bad["secret"] is None
    assert {e["field"] for e in bad["userErrors"]} == {"repository", "application", "branches"}
    short = hooks_api.query(
        """mutation { createWebhook(input: {provider: GITHUB, repository: "a/b", application: "b",
        branches: ["main"], secret: "short"}) { userErrors { field code } } }"""
    )["createWebhook"]
    assert short["userErrors"] == [{"field": "secret", "code": "INVALID_INPUT"}]

    made = create_hook(
        hooks_api, provider="GITHUB", repository="a/b", application="b", branches=["*"]
    )
    assert len(made["secret"]) >= 32
    listed = hooks_api.query("{ webhooks { id number repository branches path } }")["webhooks"]
    assert made["webhook"]["id"] in [w["id"] for w in listed]
    assert made["secret"] not in str(listed)
    as_node = hooks_api.query(
        "query($id: ID!) { node(id: $id) { id ... on Webhook { repository branches } } }",
        {"id": made["webhook"]["id"]},
    )["node"]
    assert as_node == {"id": made["webhook"]["id"], "repository": "a/b", "branches": ["*"]}

    updated = hooks_api.query(
        """mutation($id: ID!) { updateWebhook(input: {id: $id, branches: ["main"],
        rotateSecret: true}) { secret webhook { branches } userErrors { code } } }""",
        {"id": made["webhook"]["id"]},
    )["updateWebhook"]
    assert updated["webhook"]["branches"] == ["main"]
    assert updated["secret"] and updated["secret"] != made["secret"]

    deleted = hooks_api.query(
        """mutation($id: ID!) { deleteWebhook(input: {id: $id}) { deletedWebhookId
        userErrors { code } } }""",
        {"id": made["webhook"]["id"]},
    )["deleteWebhook"]
    assert deleted["deletedWebhookId"] == made["webhook"]["id"]
    remaining = hooks_api.query("{ webhooks { id } }")["webhooks"]
    assert made["webhook"]["id"] not in [w["id"] for w in remaining]
    gone = hooks_api.query(
        """mutation($id: ID!) { deleteWebhook(input: {id: $id}) { userErrors { code } } }""",
        {"id": made["webhook"]["id"]},
    )["deleteWebhook"]
    assert gone["userErrors"] == [{"code": "WEBHOOK_NOT_FOUND"}]


def test_a_refused_deploy_is_a_rejected_delivery_and_a_redelivery_retries_it(
    hooks_api: Client,
) -> None:
    made = create_hook(
        hooks_api,
        provider="GITHUB",
        repository="Codertocat/No-Url",
        application="wh-nourl",
        branches=["main"],
    )
    secret, path = str(made["secret"]), str(made["webhook"]["path"])
    data = github_push("Codertocat/No-Url", SHA)
    del data["repository"]["clone_url"]  # nowhere to fetch from: the deploy is refused
    body = body_of(data)
    headers = github_headers(secret, body)
    refused = post(hooks_api, path, body, headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "INVALID_INPUT"
    deliveries = hooks_api.query(DELIVERIES, {"id": made["webhook"]["id"]})["webhookDeliveries"]
    assert [(d["outcome"], d["deployment"]) for d in deliveries] == [("REJECTED", None)]
    assert "repositoryUrl" in deliveries[0]["reason"]

    # Fixed (the hook now says where to fetch from), GitHub's "Redeliver" deploys.
    hooks_api.query(
        """mutation($id: ID!) { updateWebhook(input: {id: $id,
        repositoryUrl: "git://127.0.0.1:1/nourl.git"}) { userErrors { code } } }""",
        {"id": made["webhook"]["id"]},
    )
    retried = post(hooks_api, path, body, headers)
    assert retried.status_code == 202, retried.text
    deliveries = hooks_api.query(DELIVERIES, {"id": made["webhook"]["id"]})["webhookDeliveries"]
    assert [d["outcome"] for d in deliveries] == ["DEPLOYED"]
