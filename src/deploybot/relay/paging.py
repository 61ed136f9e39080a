"""The relay's merged paging: each environment's page request from the relay cursor, the
k-way merge of their answers by creation time (ties by environment and id), and the opaque
cursor that carries every environment's position."""

from __future__ import annotations

import base64
import heapq
from typing import Any

import orjson

from deploybot.ids import InvalidId, encode_cursor
from deploybot.inputs import PageRequest
from deploybot.records import DeploymentRecord, Edge, Page

SHARE_MARGIN = 4
"""Rows asked of each environment beyond its even share of a page (size/k): a little
unevenness costs no second round."""


def cursor_after(position: int | None) -> str | None:
    return None if position is None else encode_cursor(position)


def merge_key(record: DeploymentRecord) -> tuple[Any, str, int]:
    return (record.created_at, record.environment, record.id)


def env_page(
    env: str,
    position: dict[str, int],
    own: str | None,
    page: PageRequest,
    size: int,
    backwards: bool,
) -> PageRequest | None:
    """What to ask `env` for: after its position, or before it (at-or-before for the
    environments other than the cursor's own, whose position is the cursor's edge itself)."""
    if not backwards:
        after = position.get(env)
        return PageRequest(
            first=size,
            after=None if after is None else encode_cursor(after),
            descending=page.descending,
        )
    if own is None:
        return PageRequest(last=size, descending=page.descending)
    bound = position.get(env)
    if bound is None:
        return None  # none of its deployments comes before the cursor
    if env != own:
        bound = bound - 1 if page.descending else bound + 1  # include the position itself
        if bound < 1:
            return PageRequest(last=size, descending=page.descending)
    return PageRequest(last=size, before=encode_cursor(bound), descending=page.descending)


def merge_pages(
    pages: dict[str, Page[DeploymentRecord]],
    start: dict[str, int],
    descending: bool,
    size: int,
    backwards: bool,
    had_marker: bool,
) -> Page[DeploymentRecord]:
    streams = [[e.node for e in p.edges] for p in pages.values()]
    ordered = list(heapq.merge(*streams, key=merge_key, reverse=descending))
    more = len(ordered) > size or any(
        p.has_previous if backwards else p.has_next for p in pages.values()
    )
    taken = ordered[-size:] if backwards else ordered[:size]
    edges: list[Edge[DeploymentRecord]] = []
    # backwards, positions are found from the answers: those before the page's first edge
    position = before_positions(pages, taken, descending) if backwards else dict(start)
    for record in taken:
        position[record.environment] = record.id
        edges.append(Edge(encode_relay_cursor(position, record.environment), record))
    if backwards:
        return Page(edges, has_next=had_marker, has_previous=more)
    return Page(edges, has_next=more, has_previous=had_marker)


def before_positions(
    pages: dict[str, Page[DeploymentRecord]], taken: list[DeploymentRecord], descending: bool
) -> dict[str, int]:
    """Each environment's last deployment before the page's first edge (from what the
    environments answered: a backwards page holds them, or the environment has none)."""
    if not taken:
        return {}
    first = merge_key(taken[0])
    position: dict[str, int] = {}
    for env, answered in pages.items():
        earlier = [
            e.node
            for e in answered.edges
            if (merge_key(e.node) > first if descending else merge_key(e.node) < first)
        ]
        if earlier:
            position[env] = earlier[-1].id
        elif answered.has_previous:
            # older ones exist beyond what was asked: the first answered one bounds them
            nodes = [e.node for e in answered.edges]
            if nodes:
                position[env] = nodes[0].id - (-1 if descending else 1)
    return position


def encode_relay_cursor(position: dict[str, int], own: str) -> str:
    raw = orjson.dumps({"p": position, "o": own})
    return base64.urlsafe_b64encode(b"r:" + raw).decode().rstrip("=")


def decode_relay_cursor(value: str) -> tuple[dict[str, int], str | None]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        if not raw.startswith(b"r:"):
            raise ValueError
        body = orjson.loads(raw[2:])
        position = {str(k): int(v) for k, v in body["p"].items()}
        return position, str(body["o"])
    except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
        raise InvalidId(f"not a valid cursor: {value[:60]!r}") from None
