"""The relay's own codec for history pages (`relay.wire.FAST_ANSWERS`) reads back what the
instance wrote, field for field, as the protocol's pydantic adapter would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from deploybot.domain import DeploymentState, DeploymentStrategy, DeploymentTrigger
from deploybot.errors import ErrorCode
from deploybot.ids import encode_cursor
from deploybot.records import DeploymentRecord, Edge, Page
from deploybot.relay import wire

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _page() -> Page[DeploymentRecord]:
    full = DeploymentRecord(
        id=7,
        environment="production",
        application="web",
        state=DeploymentState.FAILURE,
        strategy=DeploymentStrategy.BLUE_GREEN,
        trigger=DeploymentTrigger.WEBHOOK,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=5),
        commit_sha="a" * 40,
        committed_at=T0 - timedelta(hours=1),
        version="1.2.3",
        references=["main", "v1.2.3"],
        hosts=["h1"],
        original_request={"application": "web", "nested": {"n": [1, None]}},
        error_code=ErrorCode.DEPLOYMENT_NOT_FOUND,
        error_message="gone",
        rollback_of_id=3,
        finished_at=T0 + timedelta(seconds=5),
    )
    sparse = DeploymentRecord.of(
        {
            "id": 8,
            "environment": "production",
            "application": None,
            "state": DeploymentState.QUEUED,
            "strategy": DeploymentStrategy.ROLLING,
            "trigger": DeploymentTrigger.API,
            "created_at": T0,
            "updated_at": T0,
        }
    )
    edges = [Edge(encode_cursor(r.id), r) for r in (full, sparse)]
    return Page(edges, has_next=True, has_previous=False)


def test_a_page_reads_back_as_written() -> None:
    method = wire.method("deployments")
    page = _page()
    sent = orjson.loads(orjson.dumps({"answer": method.encode_answer(page)}))
    assert method.decode_answer(sent["answer"]) == page
    assert "commit_message" not in sent["answer"]["edges"][0][1]  # unset fields do not travel


def test_a_page_in_the_pydantic_form_reads_back_too() -> None:
    """What an instance from before the relay's own codec answers."""
    method = wire.method("deployments")
    page = _page()
    sent = orjson.loads(orjson.dumps(method.answer.dump_python(page, mode="json")))
    assert method.decode_answer(sent) == page
    assert method.answer.validate_python(sent) == page
