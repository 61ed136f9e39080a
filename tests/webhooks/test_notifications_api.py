"""Notifications to local receivers through a running server: signed bodies, retried after
the receiver answered 500 twice, nothing lost, and a slow receiver slows nothing."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import Client
from tests.webhooks.receiver import Receiver

SECRET = "notify-secret-0123456789"

RECORD = """mutation($input: RecordDeploymentInput!) {
  recordDeployment(input: $input) { userErrors { code } deployment { id number } } }"""
REPORT = """mutation($input: ReportDeploymentStatusInput!) {
  reportDeploymentStatus(input: $input) { userErrors { code } deployment { state } } }"""
CREATE = """mutation($input: CreateNotificationTargetInput!) {
  createNotificationTarget(input: $input) {
    userErrors { field code } notificationTarget { id number url applications states format signed }
  } }"""
DELIVERIES = """query($id: ID!) { notificationDeliveries(target: $id, first: 20) {
  deliveryId state status attempts lastStatusCode lastError deployment { number } } }"""


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    flaky, slow = Receiver(fail_first=2), Receiver(delay=2.0)
    yield flaky, slow
    flaky.close()
    slow.close()


def create_target(api: Client, **input: Any) -> dict[str, Any]:
    made = api.query(CREATE, {"input": input})["createNotificationTarget"]
    assert made["userErrors"] == [], made["userErrors"]
    return dict(made["notificationTarget"])


def timed(api: Client, query: str, input: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    data = api.query(query, {"input": input})
    return data, time.monotonic() - started


def test_state_changes_are_posted_signed_and_retried(
    hooks_api: Client, receivers: tuple[Receiver, Receiver]
) -> None:
    flaky, slow = receivers
    target = create_target(
        hooks_api,
        url=f"{flaky.url}/deploys",
        filter={"applications": ["wh-notify"], "states": ["IN_PROGRESS", "SUCCESS"]},
        secret=SECRET,
    )
    assert target["signed"] is True and target["states"] == ["IN_PROGRESS", "SUCCESS"]
    slack = create_target(
        hooks_api, url=f"{slow.url}/slack", format="SLACK", filter={"applications": ["wh-notify"]}
    )
    assert "secret" not in str(hooks_api.query("{ notificationTargets { url signed } }"))

    recorded, took = timed(
        hooks_api, RECORD, {"application": "wh-notify", "version": "1.0", "state": "QUEUED"}
    )
    deployment = recorded["recordDeployment"]["deployment"]
    slowest = took
    for state in ("IN_PROGRESS", "SUCCESS"):
        reported, took = timed(hooks_api, REPORT, {"id": deployment["id"], "state": state})
        assert reported["reportDeploymentStatus"]["deployment"]["state"] == state
        slowest = max(slowest, took)
    # The slow receiver holds each POST for 2 s; the API never waits for it.
    assert slowest < 1.5, f"a state change took {slowest:.2f}s with a slow receiver"

    seen = flaky.wait_for(lambda got: sum(r.status == 200 for r in got) == 2)
    assert [r.status for r in seen].count(500) == 4  # each delivery failed twice first
    for received in seen:
        expected = hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
        assert received.headers["x-deploybot-signature-256"] == f"sha256={expected}"
        assert received.headers["x-deploybot-delivery"] == received.json["deliveryId"]
    delivered = [r.json for r in seen if r.status == 200]
    assert sorted(d["state"] for d in delivered) == ["IN_PROGRESS", "SUCCESS"]  # not QUEUED
    body = next(d for d in delivered if d["state"] == "SUCCESS")
    assert body["deployment"]["application"] == "wh-notify"
    assert body["deployment"]["number"] == deployment["number"]
    assert body["links"]["logs"].endswith(f"/deployments/{deployment['number']}/logs")

    deliveries = hooks_api.query(DELIVERIES, {"id": target["id"]})["notificationDeliveries"]
    assert [(d["state"], d["status"], d["attempts"], d["lastStatusCode"]) for d in deliveries] == [
        ("SUCCESS", "DELIVERED", 3, 200),
        ("IN_PROGRESS", "DELIVERED", 3, 200),
    ]

    # The slow receiver's POSTs time out and are tried again (Slack's shape, unsigned).
    slow_seen = slow.wait_for(lambda got: len(got) >= 4, timeout=30)
    assert "x-deploybot-signature-256" not in slow_seen[0].headers
    assert "wh-notify #" in slow_seen[0].json["text"]
    for made in (target, slack):
        hooks_api.query(
            """mutation($id: ID!) { deleteNotificationTarget(input: {id: $id})
            { userErrors { code } } }""",
            {"id": made["id"]},
        )


def test_targets_are_validated_and_deleted(hooks_api: Client) -> None:
    bad = hooks_api.query(CREATE, {"input": {"url": "ftp://example.com/x", "secret": "short"}})[
        "createNotificationTarget"
    ]
    assert {e["field"] for e in bad["userErrors"]} == {"url", "secret"}
    made = create_target(hooks_api, url="http://127.0.0.1:9/x")
    gone = hooks_api.query(
        """mutation($id: ID!) { deleteNotificationTarget(input: {id: $id}) {
        deletedNotificationTargetId userErrors { code } } }""",
        {"id": made["id"]},
    )["deleteNotificationTarget"]
    assert gone["deletedNotificationTargetId"] == made["id"]
    remaining = hooks_api.query("{ notificationTargets { id } }")["notificationTargets"]
    assert made["id"] not in [t["id"] for t in remaining]
