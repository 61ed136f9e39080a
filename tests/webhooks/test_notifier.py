"""The notifier in-process: events it never heard (its bus queue overflowed) are found in
the database, so a state change is not lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deploybot.config import Settings
from deploybot.core.notifications import Notifier
from deploybot.domain import DeploymentState
from deploybot.events.bus import DeploymentEvent
from deploybot.inputs import NotificationTargetRequest, RecordRequest
from deploybot.instance import Instance
from tests.webhooks.receiver import Receiver


@pytest.fixture
async def instance(tmp_path: Path) -> AsyncIterator[Instance]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/deploybot.db",
        environment="test",
        work_dir=tmp_path / "work",
        notify_backoff=0.2,
    )
    made = Instance(settings)
    async with made.running():
        yield made


async def test_a_dropped_event_is_caught_up_from_the_database(instance: Instance) -> None:
    receiver = Receiver()
    notifier = Notifier(instance.db, instance.bus, instance.settings)
    await notifier.start()
    try:
        recorded = await instance.backend.record_deployment(
            RecordRequest(application="wh-ovf", version="1.0", state=DeploymentState.SUCCESS)
        )
        await asyncio.sleep(0.5)  # its event is heard while nobody is to be told
        await instance.backend.create_notification_target(
            NotificationTargetRequest(url=f"{receiver.url}/n", applications=["wh-ovf"])
        )
        for sequence in range(1000):  # fill the notifier's queue without yielding to it
            instance.bus.publish(DeploymentEvent(0, None, "log", sequence=sequence))
        # This one is dropped (the queue is full): the notifier must find it in the database.
        instance.bus.publish(DeploymentEvent(recorded.id, "SUCCESS"))
        seen = await asyncio.to_thread(
            receiver.wait_for, lambda got: any(r.status == 200 for r in got), 30
        )
        body = seen[-1].json
        assert body["state"] == "SUCCESS"
        assert body["deployment"]["number"] == recorded.id
    finally:
        await notifier.stop()
        receiver.close()
