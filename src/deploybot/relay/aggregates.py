"""What the relay computes over its environments rather than routes: releases, the latest
release, current versions and delivery metrics (issue 13).

- Releases: a version is one release across environments (component, train, version);
  the merged catalogue lists it once, as its most recent release (ties: the environment
  named last, e.g. production over dev), at that release's place in the order. Each
  environment's page is fetched after its own position, the pages are merged, and the
  twins of every candidate are looked up on the other environments (`releases_named`), so
  paging stays exact however far apart the twins were released. Cursors carry each
  environment's own cursor.
- `latestRelease`: each environment's latest, then the greatest of them (by release time,
  or by semantic-version precedence then release time): the head of the merged list.
- `currentVersion`: each environment answers for itself; the answers are concatenated.
- `deliveryMetrics`: each environment hands over its samples (`delivery_samples`, the rows
  its own metrics read, under the same permission) and the union is computed by the same
  function an instance uses: medians and p90s of the union, never averages of averages.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from deploybot.core import delivery_metrics as metrics
from deploybot.core import semver
from deploybot.core.history import page_bounds
from deploybot.domain import Interval
from deploybot.errors import DeploybotError, ErrorCode
from deploybot.filters import MetricsFilter, ReleaseFilter
from deploybot.inputs import ReleaseRef
from deploybot.records import (
    DeliveryMetrics,
    DeliverySample,
    Edge,
    EnvironmentVersion,
    Page,
    ReleaseRecord,
)

if TYPE_CHECKING:
    from deploybot.relay.backend import RelayBackend

ReleaseKey = tuple[str, str, str]

MAX_ROUNDS = 20
"""Rounds of fetching one releases page may take when duplicates keep it short."""


def release_key(record: ReleaseRecord) -> ReleaseKey:
    return (record.component, record.train, record.version)


def _rank(record: ReleaseRecord) -> tuple[datetime, str]:
    """Which twin stands for a release: the most recent one."""
    return (record.released_at, record.environment)


async def _ask(
    relay: RelayBackend, name: str, calls: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """Each environment's call at once (its own arguments); one that does not answer is
    noted as unavailable, as for every list."""
    from deploybot.relay.backend import EnvironmentUnavailable

    answers = await asyncio.gather(
        *(relay._call(env, name, **args) for env, args in calls.items()), return_exceptions=True
    )
    found: dict[str, Any] = {}
    for env, answer in zip(calls, answers, strict=True):
        if isinstance(answer, EnvironmentUnavailable):
            relay.unavailable[env] = answer.message
        elif isinstance(answer, BaseException):
            raise answer
        else:
            found[env] = answer
    return found


async def releases(
    relay: RelayBackend,
    filter: ReleaseFilter | None,
    *,
    first: int | None,
    after: str | None,
    by_release_time: bool,
    descending: bool,
) -> Page[ReleaseRecord]:
    size, _ = page_bounds(first, None)
    position = decode_release_cursor(after) if after else {}
    environments = relay._readable(None)
    shown: list[Edge[ReleaseRecord]] = []
    more = False
    for _round in range(MAX_ROUNDS):
        calls: dict[str, dict[str, Any]] = {
            env: {
                "filter": filter,
                "first": size,
                "after": position.get(env),
                "by_release_time": by_release_time,
                "descending": descending,
            }
            for env in environments
        }
        pages: dict[str, Page[ReleaseRecord]] = await _ask(relay, "releases", calls)
        streams = [[(env, e) for e in page.edges] for env, page in sorted(pages.items())]

        def order(item: tuple[str, Edge[ReleaseRecord]]) -> datetime:
            record = item[1].node
            return record.released_at if by_release_time else record.created_at

        merged = list(heapq.merge(*streams, key=order, reverse=descending))
        keys = sorted({release_key(e.node) for _env, e in merged})
        twins: dict[ReleaseKey, ReleaseRecord] = {}
        if keys:
            lookups: dict[str, dict[str, Any]] = {
                env: {"filter": filter, "keys": keys} for env in pages
            }
            for found in (await _ask(relay, "releases_named", lookups)).values():
                for record in found:
                    key = release_key(record)
                    if key not in twins or _rank(record) > _rank(twins[key]):
                        twins[key] = record
        remaining = iter(merged)
        for env, edge in remaining:
            record = edge.node
            position[env] = edge.cursor
            best = twins.get(release_key(record), record)
            if _rank(record) >= _rank(best):
                shown.append(Edge(encode_release_cursor(position), record))
                if len(shown) == size:
                    break
        left = list(remaining)
        if len(shown) == size:
            more = any(
                _rank(e.node) >= _rank(twins.get(release_key(e.node), e.node)) for _, e in left
            )
            more = more or any(page.has_next for page in pages.values())
            break
        if not any(page.has_next for page in pages.values()):
            break
        environments = [env for env, page in pages.items() if page.has_next]
    return Page(shown, has_next=more, has_previous=after is not None)


async def release_keys(relay: RelayBackend, filter: ReleaseFilter | None) -> list[ReleaseKey]:
    """The distinct releases (component, train, version) the environments hold."""
    found = await relay._each(relay._readable(None), "release_keys", filter=filter)
    return sorted({(k[0], k[1], k[2]) for keys in found.values() for k in keys})


async def count_releases(relay: RelayBackend, filter: ReleaseFilter | None) -> int:
    return len(await release_keys(relay, filter))


async def latest_release(
    relay: RelayBackend, component: str, train: str, *, by_semver: bool
) -> ReleaseRecord | None:
    found = await relay._each(
        relay._readable(None),
        "latest_release",
        component=component,
        train=train,
        by_semver=by_semver,
    )
    candidates: list[ReleaseRecord] = [r for r in found.values() if r is not None]
    if not candidates:
        return None
    if by_semver:
        return max(candidates, key=lambda r: (semver.precedence_key(r.version), *_rank(r)))
    return max(candidates, key=_rank)


async def release(relay: RelayBackend, ref: ReleaseRef) -> ReleaseRecord | None:
    if ref.environment not in relay.upstreams:
        return None
    record: ReleaseRecord | None = await relay._call(ref.environment, "release", ref=ref)
    return record


async def releases_by_ref(
    relay: RelayBackend, refs: list[ReleaseRef]
) -> dict[ReleaseRef, ReleaseRecord]:
    groups: dict[str, list[ReleaseRef]] = {}
    for ref in refs:
        if ref.environment in relay.upstreams:
            groups.setdefault(ref.environment, []).append(ref)
    found = await _ask(relay, "releases_by_ref", {env: {"refs": g} for env, g in groups.items()})
    return {ref: record for answer in found.values() for ref, record in answer.items()}


async def current_versions(
    relay: RelayBackend, application: str, environment: str | None
) -> list[EnvironmentVersion]:
    """An environment the relay does not know, or the caller may not read, has none (as on
    an instance, where another environment's name finds nothing)."""
    wanted = [environment] if environment is not None else None
    found = await relay._each(
        relay._readable(wanted), "current_versions", application=application, environment=None
    )
    return [version for env in sorted(found) for version in found[env]]


async def delivery_metrics(
    relay: RelayBackend,
    filter: MetricsFilter | None,
    *,
    since: datetime | None,
    until: datetime | None,
    interval: Interval,
) -> DeliveryMetrics:
    start, end = metrics.window(since, until, interval)
    samples = await delivery_samples(relay, filter, since=start, until=end)
    return metrics.compute(samples, since=start, until=end, interval=interval)


async def delivery_samples(
    relay: RelayBackend,
    filter: MetricsFilter | None,
    *,
    since: datetime | None,
    until: datetime | None,
) -> list[DeliverySample]:
    """The selected environments' samples, together (each keeps its environment's name)."""
    wanted = filter.environments if filter else None
    found = await relay._each(
        relay._readable(wanted), "delivery_samples", filter=filter, since=since, until=until
    )
    return [s for env in sorted(found) for s in found[env]]


def encode_release_cursor(position: Mapping[str, str]) -> str:
    raw = orjson.dumps(dict(position), option=orjson.OPT_SORT_KEYS)
    return base64.urlsafe_b64encode(b"rr:" + raw).decode().rstrip("=")


def decode_release_cursor(value: str) -> dict[str, str]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        if not raw.startswith(b"rr:"):
            raise ValueError
        body = orjson.loads(raw[3:])
        return {str(k): str(v) for k, v in body.items()}
    except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError):
        raise DeploybotError(
            ErrorCode.INVALID_INPUT, f"after: not a valid cursor: {value[:60]!r}", field="after"
        ) from None
