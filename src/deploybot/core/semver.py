"""Semantic-version precedence (semver.org 2.0.0, item 11), for `latestRelease(by: SEMVER)`.

Release trains carry tags like `v1.4.0`, `2.0.0-beta2` and short shas side by
side: a version that is not semantic sorts below every one that is.
"""

from __future__ import annotations

import re

_SEMVER_RE = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)

PrereleaseKey = tuple[tuple[int, int | str], ...]
SemverKey = tuple[int, tuple[int, int, int], int, PrereleaseKey]


def parse(version: str) -> tuple[int, int, int, list[str]] | None:
    """(major, minor, patch, prerelease identifiers), or None if not a semantic version."""
    match = _SEMVER_RE.match(version)
    if match is None:
        return None
    pre = match.group("pre")
    return (
        int(match.group("major")),
        int(match.group("minor")),
        int(match.group("patch")),
        pre.split(".") if pre else [],
    )


def precedence_key(version: str) -> SemverKey:
    """A sort key: higher is newer. Build metadata is ignored; a release outranks its
    prereleases; numeric identifiers compare as numbers and below alphanumeric ones."""
    parsed = parse(version)
    if parsed is None:
        return (0, (0, 0, 0), 0, ())
    major, minor, patch, pre = parsed
    identifiers: PrereleaseKey = tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in pre
    )
    return (1, (major, minor, patch), 0 if pre else 1, identifiers)
