"""The backend calls added for the REST routes check the caller's grants (the routes get
their backend from `rest.common.backend_of`, so they answer exactly this)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploybot.access import Principal, parse_grants
from deploybot.config import Settings
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.inputs import DeploymentRef, RecordedService, RecordRequest
from deploybot.instance import Instance


async def test_new_calls_require_their_grants(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/guard.db",
        environment="test",
        work_dir=tmp_path / "work",
    )
    instance = Instance(settings)
    async with instance.running():
        recorded = await instance.backend.record_deployment(
            RecordRequest(application="rs-guard", version="1")
        )
        ref = DeploymentRef(None, recorded.id)
        reader = instance.backend_for(
            Principal("reader", parse_grants(["read:test"]), key="reader")
        )
        with pytest.raises(DeploybotError) as refused:
            await reader.add_recorded_services(ref, [RecordedService(name="api")])
        assert refused.value.code is ErrorCode.FORBIDDEN

        other_app = instance.backend_for(
            Principal("shop", parse_grants(["record:test/rs-shop"]), key="shop")
        )
        with pytest.raises(DeploybotError) as elsewhere:
            await other_app.add_recorded_services(ref, [RecordedService(name="api")])
        # Outside the caller's scope a deployment answers as a missing one.
        assert elsewhere.value.code is ErrorCode.DEPLOYMENT_NOT_FOUND

        recorder = instance.backend_for(
            Principal("ci", parse_grants(["record:test/rs-guard"]), key="ci")
        )
        added = await recorder.add_recorded_services(ref, [RecordedService(name="api")])
        assert [s.service for s in added] == ["api"]

        nobody = instance.backend_for(Principal("nobody", (), key="nobody"))
        with pytest.raises(DeploybotError) as unlisted:
            await nobody.application_page(None, state=None, limit=10, offset=0)
        assert unlisted.value.code is ErrorCode.FORBIDDEN
        scoped = instance.backend_for(
            Principal("one", parse_grants(["read:test/rs-guard"]), key="one")
        )
        apps, total = await scoped.application_page(None, state=None, limit=10, offset=0)
        assert [a.name for a in apps] == ["rs-guard"] and total == 1
