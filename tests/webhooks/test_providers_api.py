"""GitLab, Bitbucket, Travis CI and Docker Hub hooks through a running server (no runner):
each provider's credential, mapping and de-duplication end in the deployment's record."""

from __future__ import annotations

import httpx

from tests.servers import Client
from tests.webhooks.hooks import (
    DEPLOYMENT,
    body_of,
    create_hook,
    github_signature,
    payload,
    travis_keys,
    travis_request,
)


def deployment_of(api: Client, answer: httpx.Response) -> dict[str, object]:
    assert answer.status_code == 202, answer.text
    found: dict[str, object] = api.query(DEPLOYMENT, {"id": answer.json()["deployment"]["id"]})[
        "deployment"
    ]
    return found


def test_gitlab_bitbucket_travis_and_docker_hub(hooks_api: Client) -> None:
    # GitLab: the token header is the secret.
    gitlab = create_hook(
        hooks_api,
        provider="GITLAB",
        repository="mike/diaspora",
        application="wh-gl",
        branches=["master"],
    )
    push = body_of(payload("gitlab-push.json"))
    headers = {"X-Gitlab-Event": "Push Hook", "Idempotency-Key": "gl-1"}
    path = gitlab["webhook"]["path"]
    denied = hooks_api.http.post(path, content=push, headers={**headers, "X-Gitlab-Token": "nope"})
    assert denied.status_code == 401
    made = deployment_of(
        hooks_api,
        hooks_api.http.post(
            path, content=push, headers={**headers, "X-Gitlab-Token": gitlab["secret"]}
        ),
    )
    assert (made["provider"], made["actor"], made["ref"]) == ("gitlab", "jsmith", "master")
    assert made["repositoryUrl"] == "http://example.com/mike/diaspora.git"
    assert made["commitSha"] == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    again = hooks_api.http.post(
        path, content=push, headers={**headers, "X-Gitlab-Token": gitlab["secret"]}
    )
    assert again.json()["deployment"]["number"] == made["number"]
    tag = body_of(payload("gitlab-tag-push.json"))
    ignored = hooks_api.http.post(
        path,
        content=tag,
        headers={"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": gitlab["secret"]},
    )
    assert ignored.status_code == 200  # another repository (jsmith/example)

    # Bitbucket: X-Hub-Signature, one deploy for the push's change, X-Request-UUID de-dups.
    bitbucket = create_hook(
        hooks_api,
        provider="BITBUCKET",
        repository="emmap1/bitbucket-pipelines-example",
        application="wh-bb",
        branches=["master"],
    )
    bb_body = body_of(payload("bitbucket-repo-push.json"))
    bb_headers = {
        "X-Event-Key": "repo:push",
        "X-Request-UUID": "afbd2d28-7a23-4a28-a6e3-d6d1e2e7ef3d",
        "X-Hub-Signature": github_signature(bitbucket["secret"], bb_body),
    }
    bb_path = bitbucket["webhook"]["path"]
    made = deployment_of(
        hooks_api, hooks_api.http.post(bb_path, content=bb_body, headers=bb_headers)
    )
    assert (made["provider"], made["actor"], made["ref"]) == ("bitbucket", "emmap1", "master")
    assert made["commitSha"] == "709d658dc5b6d6afcd46049c2f332ee3f515a67d"
    assert made["originalRequest"]["headers"]["x-event-key"] == "repo:push"
    forged = {**bb_headers, "X-Hub-Signature": github_signature("wrong-secret-123456", bb_body)}
    assert hooks_api.http.post(bb_path, content=bb_body, headers=forged).status_code == 401

    # Travis CI: the form's payload, signed with RSA-SHA1 by a key the test made.
    private, public = travis_keys()
    travis = create_hook(
        hooks_api,
        provider="TRAVIS",
        repository="svenfuchs/minimal",
        application="wh-travis",
        branches=["master"],
        publicKey=public,
    )
    build = payload("travis-build.json")
    form, travis_headers = travis_request(private, build)
    t_path = travis["webhook"]["path"]
    made = deployment_of(
        hooks_api, hooks_api.http.post(t_path, content=form, headers=travis_headers)
    )
    assert (made["provider"], made["actor"], made["commitSha"]) == (
        "travis",
        "Sven Fuchs",
        "62aae5f70ceee39123ef",
    )
    assert made["repositoryUrl"] == "http://github.com/svenfuchs/minimal"
    other_private, _ = travis_keys()
    _, forged_headers = travis_request(other_private, build)
    assert hooks_api.http.post(t_path, content=form, headers=forged_headers).status_code == 401
    build["status_message"] = "Failed"
    build["id"] = 2
    failed_form, failed_headers = travis_request(private, build)
    failed = hooks_api.http.post(t_path, content=failed_form, headers=failed_headers)
    assert failed.status_code == 200
    assert "failed, not passed" in failed.json()["delivery"]["reason"]
    no_travis_key = hooks_api.query(
        """mutation { createWebhook(input: {provider: TRAVIS, repository: "a/b",
        application: "b", branches: ["main"]}) { userErrors { field } } }"""
    )["createWebhook"]
    assert no_travis_key["userErrors"] == [{"field": "publicKey"}]

    # Docker Hub: the token is in the URL; an image deploy of the configured service.
    hub = create_hook(
        hooks_api,
        provider="DOCKER_HUB",
        repository="svendowideit/testhook",
        application="wh-hub",
        deploy={"service": "web", "imageRepository": "127.0.0.1:5000/wh-hub/web"},
    )
    hub_path = hub["webhook"]["path"]
    assert hub_path.endswith("/" + hub["secret"])
    listed = hooks_api.query("{ webhooks { path } }")["webhooks"]
    assert hub["secret"] not in str(listed)  # the token is only answered once
    hub_body = body_of(payload("dockerhub-push.json"))
    made = deployment_of(hooks_api, hooks_api.http.post(hub_path, content=hub_body))
    assert made["provider"] == "dockerhub" and made["actor"] == "trustedbuilder"
    assert made["mappedRequest"]["image"] == "127.0.0.1:5000/wh-hub/web:latest"
    assert made["mappedRequest"]["service"] == "web"
    wrong = hub_path.rsplit("/", 1)[0] + "/not-the-token"
    assert hooks_api.http.post(wrong, content=hub_body).status_code == 401
    assert hooks_api.http.post(hub_path.rsplit("/", 1)[0], content=hub_body).status_code == 401
