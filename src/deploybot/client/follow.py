"""Follow a deployment live over WebSocket: its progress and its log lines, until it ends.

A dropped socket is reconnected (with a growing pause) and the log resumed after the
last sequence already handed out, so no line is lost or repeated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deploybot.client import documents
from deploybot.client.connection import Connection, ConnectionLost, GraphQLErrors, Operation

RECONNECT_PAUSES = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)
MAX_RECONNECTS = 30
"""Consecutive failed reconnections before giving up (about two minutes)."""


@dataclass
class Watcher:
    """What to do with each progress message and batch of log lines."""

    on_progress: Callable[[dict[str, Any]], None] | None = None
    on_lines: Callable[[list[dict[str, Any]]], None] | None = None
    on_reconnect: Callable[[str], None] | None = None


@dataclass
class _State:
    progress_done: bool
    logs_done: bool
    last_sequence: int


async def follow(
    connection: Connection, deployment_id: str, watcher: Watcher, *, after: int = 0
) -> int:
    """Follow until the deployment ended (and, when following logs, every line arrived).
    Returns the last log sequence handed out."""
    state = _State(watcher.on_progress is None, watcher.on_lines is None, after)
    failures = 0
    while not (state.progress_done and state.logs_done):
        operations = {}
        if not state.progress_done:
            operations["progress"] = Operation(documents.PROGRESS, {"id": deployment_id})
        if not state.logs_done:
            operations["logs"] = Operation(
                documents.LOGS, {"id": deployment_id, "after": state.last_sequence}
            )
        try:
            async for event in connection.subscribe(operations):
                failures = 0
                _handle(event.name, event.kind, event.data, event.errors, state, watcher)
        except ConnectionLost as exc:
            if failures >= MAX_RECONNECTS:
                raise
            pause = RECONNECT_PAUSES[min(failures, len(RECONNECT_PAUSES) - 1)]
            failures += 1
            if watcher.on_reconnect is not None:
                watcher.on_reconnect(f"{exc}; reconnecting in {pause:g}s")
            await asyncio.sleep(pause)
    return state.last_sequence


def _handle(
    name: str,
    kind: str,
    data: dict[str, Any] | None,
    errors: list[dict[str, Any]] | None,
    state: _State,
    watcher: Watcher,
) -> None:
    if kind == "error" or errors:
        raise GraphQLErrors(errors or [{"message": f"{name} failed"}])
    if kind == "complete":
        if name == "progress":
            state.progress_done = True
        else:
            state.logs_done = True
        return
    if data is None:
        return
    if name == "progress" and watcher.on_progress is not None:
        watcher.on_progress(data["deploymentProgress"])
    elif name == "logs" and watcher.on_lines is not None:
        chunk = data["deploymentLogs"]
        fresh = [line for line in chunk["lines"] if line["sequence"] > state.last_sequence]
        if fresh:
            watcher.on_lines(fresh)
        state.last_sequence = max(state.last_sequence, chunk["lastSequence"])
