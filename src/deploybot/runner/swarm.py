"""The Docker Engine API of the Swarm manager, as deploybot uses it.

One `Swarm` serves a whole process (made at start-up, closed at shutdown): the runner,
the checks before a deploy, live status and application logs all share its client.
aiodocker's `services.update` only changes the image, so full-spec updates go
through its low-level query with the service's current version (a stale one
answers 500 "update out of sequence", which is retried). Every use of aiodocker's
private API stays in this module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import quote

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

NAMESPACE_LABEL = "com.docker.stack.namespace"


def image_of(spec: Mapping[str, Any]) -> str:
    """The image reference of a service spec ("" if it has none)."""
    return str(spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("Image", ""))


class DockerUnavailable(Exception):
    """The engine cannot be reached: infrastructure, not the deployment's fault."""


def _unavailable(exc: DockerError) -> bool:
    return exc.status == 900 or exc.status >= 502


def _unix_session(path: str) -> aiohttp.ClientSession:
    """A session on the manager's socket without aiohttp's cap of 100 connections.

    The client is shared, and a log stream holds its connection as long as it follows (one
    per service of each deployment in progress and of each application whose logs are
    watched). With the cap, the 100th stream would leave every other call waiting for a
    free connection for ever: aiodocker sets no timeout. A higher cap would only move that
    point; without one a connection costs a file descriptor, and running out of them fails
    a call instead of stalling all of them. Other URLs (tcp, TLS) keep aiodocker's own
    connector (and its cap), which knows their certificates.
    """
    connector = aiohttp.UnixConnector(path, limit=0)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout())


class Swarm:
    def __init__(self, url: str) -> None:
        self.url = url
        self._docker: aiodocker.Docker | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def docker(self) -> aiodocker.Docker:
        if self._docker is None:
            if self.url.startswith("unix://"):
                self._session = _unix_session(self.url.removeprefix("unix://"))
            self._docker = aiodocker.Docker(url=self.url, session=self._session)
        return self._docker

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def query(
        self,
        path: str,
        method: str = "GET",
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        try:
            return await self.docker._query_json(
                path, method, params=dict(params) if params else None, data=body
            )
        except DockerError as exc:
            if _unavailable(exc):
                raise DockerUnavailable(str(exc.message)) from exc
            raise
        except OSError as exc:
            raise DockerUnavailable(f"cannot reach Docker at {self.url}: {exc}") from exc

    # --- networks -------------------------------------------------------------------------------

    async def ensure_network(
        self, name: str, spec: Mapping[str, Any], *, trust_listing: bool = True
    ) -> None:
        """Create the network unless it exists. Right after a stack was removed the listing can
        still show a network Swarm has deleted; `trust_listing=False` asks by creating it."""
        if trust_listing and await self.network_exists(name):
            return
        try:
            await self.query("networks/create", "POST", body=dict(spec))
        except DockerError as exc:
            if exc.status != 409:  # created meanwhile by a concurrent deploy
                raise

    async def network_exists(self, name: str) -> bool:
        existing = await self.query("networks", params={"filters": json.dumps({"name": [name]})})
        return any(n["Name"] == name for n in existing)

    # --- configs and secrets (`kind` is "config" or "secret") --------------------------------

    async def find_object(self, kind: str, name: str) -> dict[str, Any] | None:
        found = await self.query(f"{kind}s", params={"filters": json.dumps({"name": [name]})})
        return next((o for o in found if o["Spec"]["Name"] == name), None)

    async def stack_objects(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        filters = json.dumps({"label": [f"{NAMESPACE_LABEL}={namespace}"]})
        return cast(list[dict[str, Any]], await self.query(f"{kind}s", params={"filters": filters}))

    async def create_object(self, kind: str, body: Mapping[str, Any]) -> tuple[str, bool]:
        """Create a config or secret unless one of that name exists; (id, created).
        Never logs or raises the body: a secret's data is in it."""
        name = str(body["Name"])
        existing = await self.find_object(kind, name)
        if existing is not None:
            return str(existing["ID"]), False
        try:
            created = await self.query(f"{kind}s/create", "POST", body=dict(body))
        except DockerError as exc:
            if exc.status != 409:  # made meanwhile by a concurrent deploy
                raise DockerError(
                    exc.status, f"cannot create {kind} {name}: {exc.message}"
                ) from None
            existing = await self.find_object(kind, name)
            if existing is None:
                raise
            return str(existing["ID"]), False
        return str(created["ID"]), True

    async def remove_object(self, kind: str, object_id: str) -> bool:
        """Remove a config or secret; False when a service still uses it."""
        try:
            await self.query(f"{kind}s/{object_id}", "DELETE")
        except DockerError as exc:
            if exc.status == 404:
                return True
            if exc.status in (400, 409, 500) and "in use" in str(exc.message):
                return False
            raise
        return True

    # --- services -------------------------------------------------------------------------------

    async def stack_services(self, namespace: str) -> list[dict[str, Any]]:
        filters = json.dumps({"label": [f"{NAMESPACE_LABEL}={namespace}"]})
        return cast(list[dict[str, Any]], await self.query("services", params={"filters": filters}))

    async def service(self, service_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self.query(f"services/{service_id}"))

    async def find_service(self, name: str) -> dict[str, Any] | None:
        filters = json.dumps({"name": [name]})
        found = await self.query("services", params={"filters": filters})
        return next((s for s in found if s["Spec"]["Name"] == name), None)

    async def deploy_service(self, spec: Mapping[str, Any]) -> tuple[str, bool]:
        """Create the service or update it to exactly `spec`; returns (id, created)."""
        name = spec["Name"]
        for attempt in range(5):
            current = await self.find_service(name)
            if current is None:
                created = await self.query("services/create", "POST", body=dict(spec))
                return str(created["ID"]), True
            version = current["Version"]["Index"]
            try:
                await self.query(
                    f"services/{current['ID']}/update",
                    "POST",
                    params={"version": str(version)},
                    body=dict(spec),
                )
                return str(current["ID"]), False
            except DockerError as exc:
                if "out of sequence" in str(exc.message) and attempt < 4:
                    await asyncio.sleep(0.2)
                    continue
                raise
        raise AssertionError("unreachable")

    async def remove_service(self, service_id: str) -> None:
        try:
            await self.query(f"services/{service_id}", "DELETE")
        except DockerError as exc:
            if exc.status != 404:
                raise

    async def tasks(self, service_id: str) -> list[dict[str, Any]]:
        filters = json.dumps({"service": [service_id]})
        return cast(list[dict[str, Any]], await self.query("tasks", params={"filters": filters}))

    async def node_names(self) -> dict[str, str]:
        nodes = await self.query("nodes")
        return {n["ID"]: n["Description"]["Hostname"] for n in nodes}

    async def ready_nodes(self) -> int:
        nodes = await self.query("nodes")
        return sum(
            1
            for n in nodes
            if n["Status"]["State"] == "ready" and n["Spec"].get("Availability") == "active"
        )

    async def service_logs(self, service_id: str, *, since: float) -> AsyncIterator[str]:
        """Follow a service's logs; never ends by itself (cancel it)."""
        stream = self.docker.services.logs(
            service_id, follow=True, stdout=True, stderr=True, since=int(since)
        )
        async for chunk in cast(AsyncIterator[str], stream):
            yield chunk

    @asynccontextmanager
    async def service_log_frames(
        self, service_id: str, *, follow: bool, tail: int | None, since: float | None
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """A service's logs as Docker sends them: multiplexed frames (an 8-byte header with
        the stream and the size, then the data) that keep stdout and stderr apart, each
        line with its timestamp and details (the task). Following never ends by itself."""
        params = {
            "follow": "1" if follow else "0",
            "stdout": "1",
            "stderr": "1",
            "timestamps": "1",
            "details": "1",
            "tail": str(tail) if tail is not None else "all",
        }
        if since is not None:
            params["since"] = f"{since:.9f}"
        try:
            async with self.docker._query(f"services/{service_id}/logs", params=params) as response:
                yield response.content
        except DockerError as exc:
            if _unavailable(exc):
                raise DockerUnavailable(str(exc.message)) from exc
            raise

    # --- images ---------------------------------------------------------------------------------

    async def image(self, name: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], await self.query(f"images/{quote(name, safe='')}/json"))
        except DockerError as exc:
            if exc.status == 404:
                return None
            raise

    async def distribution(self, name: str) -> dict[str, Any] | None:
        """The registry's manifest descriptor of an image reference (None if it has none)."""
        try:
            return cast(dict[str, Any], await self.query(f"distribution/{name}/json"))
        except DockerError as exc:
            if exc.status in (401, 403, 404, 500):
                return None
            raise

    async def build(
        self,
        context: bytes,
        *,
        tag: str,
        dockerfile: str,
        buildargs: Mapping[str, str],
        target: str | None,
        labels: Mapping[str, str],
    ) -> AsyncIterator[dict[str, Any]]:
        """`POST /build` with a tar context; yields the engine's JSON progress messages."""
        params: dict[str, Any] = {
            "t": tag,
            "dockerfile": dockerfile,
            "rm": "1",
            "forcerm": "1",
            "buildargs": json.dumps(dict(buildargs)),
            "labels": json.dumps(dict(labels)),
        }
        if target:
            params["target"] = target
        try:
            async with self.docker._query(
                "build",
                "POST",
                params=params,
                data=context,
                headers={"Content-Type": "application/x-tar"},
                timeout=None,
            ) as response:
                buffer = b""
                async for data in response.content.iter_any():
                    buffer += data
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
                if buffer.strip():
                    yield json.loads(buffer)
        except DockerError as exc:
            if _unavailable(exc):
                raise DockerUnavailable(str(exc.message)) from exc
            raise

    async def push(self, repository: str, tag: str) -> AsyncIterator[dict[str, Any]]:
        try:
            async for message in self.docker.images.push(repository, tag=tag, stream=True):
                yield message
        except DockerError as exc:
            if exc.status == 900:
                raise DockerUnavailable(str(exc.message)) from exc
            raise
