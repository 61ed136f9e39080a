"""Each provider's verification and mapping, on the documented payloads (no server)."""

from __future__ import annotations

import pytest

from deploybot.webhooks import PROVIDERS, BadPayload, BadSignature, HookRequest, ProviderName
from tests.webhooks.hooks import (
    body_of,
    github_headers,
    github_push,
    github_signature,
    payload,
    travis_keys,
    travis_request,
)

SECRET = "s3cret-s3cret-s3cret"


def request(body: bytes, headers: dict[str, str], token: str | None = None) -> HookRequest:
    return HookRequest({k.lower(): v for k, v in headers.items()}, body, token)


def test_github_push_signature_and_mapping() -> None:
    github = PROVIDERS[ProviderName.GITHUB]
    body = body_of(github_push("Codertocat/Hello-World", "f" * 40))
    signed = request(body, github_headers(SECRET, body, delivery="d-1"))
    github.verify(signed, SECRET, None)
    (event,) = github.parse(signed)
    assert (event.kind, event.ref, event.commit_sha) == ("branch", "main", "f" * 40)
    assert (event.repository, event.actor, event.delivery_id) == (
        "Codertocat/Hello-World",
        "Codertocat",
        "292430182:d-1",
    )
    assert event.clone_url == "https://github.com/Codertocat/Hello-World.git"
    with pytest.raises(BadSignature):
        github.verify(request(body + b" ", github_headers(SECRET, body)), SECRET, None)
    with pytest.raises(BadSignature):
        github.verify(signed, SECRET + "x", None)
    headers = github_headers(SECRET, body)
    headers["X-Hub-Signature-256"] = "sha1=" + github_signature(SECRET, body)[7:]
    with pytest.raises(BadSignature):
        github.verify(request(body, headers), SECRET, None)
    with pytest.raises(BadPayload):
        github.parse(request(b"[1, 2]", github_headers(SECRET, b"[1, 2]")))


def test_gitlab_token_push_and_tag_push() -> None:
    gitlab = PROVIDERS[ProviderName.GITLAB]
    push = body_of(payload("gitlab-push.json"))
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET, "Idempotency-Key": "k1"}
    gitlab.verify(request(push, headers), SECRET, None)
    (event,) = gitlab.parse(request(push, headers))
    assert (event.kind, event.ref, event.commit_sha) == (
        "branch",
        "master",
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    )
    assert (event.repository, event.clone_url, event.actor) == (
        "mike/diaspora",
        "http://example.com/mike/diaspora.git",
        "jsmith",
    )
    assert event.commit_message == "fixed readme"
    assert event.delivery_id == "k1"
    with pytest.raises(BadSignature):
        gitlab.verify(request(push, {**headers, "X-Gitlab-Token": "wrong"}), SECRET, None)
    tag = body_of(payload("gitlab-tag-push.json"))
    (event,) = gitlab.parse(request(tag, {"X-Gitlab-Event": "Tag Push Hook"}))
    assert (event.kind, event.ref, event.repository) == ("tag", "v1.0.0", "jsmith/example")
    assert event.delivery_id.startswith("sha256:")  # no id given: a digest of the body


def test_bitbucket_signature_and_every_change() -> None:
    bitbucket = PROVIDERS[ProviderName.BITBUCKET]
    data = payload("bitbucket-repo-push.json")
    change = data["push"]["changes"][0]
    tag_change = {"new": {"type": "tag", "name": "v2", "target": {"hash": "abc1234"}}, "old": None}
    data["push"]["changes"] = [change, tag_change, {"new": None, "old": {"name": "gone"}}]
    body = body_of(data)
    headers = {
        "X-Event-Key": "repo:push",
        "X-Request-UUID": "afbd2d28-7a23-4a28-a6e3-d6d1e2e7ef3d",
        "X-Hub-Signature": github_signature(SECRET, body),
    }
    bitbucket.verify(request(body, headers), SECRET, None)
    with pytest.raises(BadSignature):
        bitbucket.verify(request(body, {**headers, "X-Hub-Signature": "sha256=00"}), SECRET, None)
    branch, tag, deleted = bitbucket.parse(request(body, headers))
    assert (branch.kind, branch.ref, branch.commit_sha) == (
        "branch",
        "master",
        "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
    )
    assert branch.repository == "emmap1/bitbucket-pipelines-example"
    assert branch.clone_url == "https://bitbucket.org/emmap1/bitbucket-pipelines-example.git"
    assert branch.actor == "emmap1"
    assert (tag.kind, tag.ref) == ("tag", "v2")
    assert deleted.ignored == "gone was deleted"
    assert branch.delivery_id == "afbd2d28-7a23-4a28-a6e3-d6d1e2e7ef3d"


def test_docker_hub_token_and_image() -> None:
    hub = PROVIDERS[ProviderName.DOCKER_HUB]
    body = body_of(payload("dockerhub-push.json"))
    hub.verify(request(body, {}, token=SECRET), SECRET, None)
    with pytest.raises(BadSignature):
        hub.verify(request(body, {}, token="guess"), SECRET, None)
    with pytest.raises(BadSignature):
        hub.verify(request(body, {}), SECRET, None)
    (event,) = hub.parse(request(body, {}, token=SECRET))
    assert (event.kind, event.repository, event.image_tag, event.actor) == (
        "image",
        "svendowideit/testhook",
        "latest",
        "trustedbuilder",
    )
    assert event.callback_url and event.callback_url.startswith("https://registry.hub.docker.com/")
    with pytest.raises(BadPayload):
        hub.parse(request(b'{"push_data": {}}', {}))


def test_travis_rsa_signature_and_build_status() -> None:
    travis = PROVIDERS[ProviderName.TRAVIS]
    private, public = travis_keys()
    data = payload("travis-build.json")
    body, headers = travis_request(private, data)
    travis.verify(request(body, headers), SECRET, public)
    (event,) = travis.parse(request(body, headers))
    assert (event.kind, event.ref, event.commit_sha) == ("branch", "master", "62aae5f70ceee39123ef")
    assert (event.repository, event.actor, event.ignored) == (
        "svenfuchs/minimal",
        "Sven Fuchs",
        None,
    )
    other_private, _ = travis_keys()
    _, forged_headers = travis_request(other_private, data)
    with pytest.raises(BadSignature):
        travis.verify(request(body, forged_headers), SECRET, public)
    with pytest.raises(BadSignature):
        travis.verify(request(body, {**headers, "Signature": "not base64!"}), SECRET, public)
    data["status_message"] = "Broken"
    failed_body, failed_headers = travis_request(private, data)
    (failed,) = travis.parse(request(failed_body, failed_headers))
    assert failed.ignored == "build status is broken, not passed"
    with pytest.raises(BadPayload):
        travis.parse(request(b"payload=%7Bnot-json", {}))
    with pytest.raises(BadPayload):
        travis.parse(request(b'{"json": "instead of a form"}', {}))


def test_docker_hub_tokens_stay_out_of_the_access_log() -> None:
    import logging

    from deploybot.web.hooks import RedactHookTokens

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5555", "POST", "/hooks/dockerhub/7/s3cr3t-token?x=1", "1.1", 202),
        None,
    )
    assert RedactHookTokens().filter(record)
    assert "s3cr3t-token" not in record.getMessage()
    assert "/hooks/dockerhub/7/***?x=1" in record.getMessage()
