"""Semantic-version precedence, as semver.org's item 11 lists it."""

from __future__ import annotations

from deploybot.core.semver import parse, precedence_key


def test_precedence_follows_semver_org() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "v1.2.0",
        "1.10.0",
        "2.0.0-beta2",
        "2.0.0",
    ]
    assert sorted(reversed(ordered), key=precedence_key) == ordered


def test_non_semantic_versions_rank_below_and_build_metadata_is_ignored() -> None:
    assert precedence_key("abc1234") < precedence_key("0.0.1-alpha")
    assert precedence_key("1.0") < precedence_key("0.0.1")
    assert precedence_key("1.0.0+build.7") == precedence_key("1.0.0+build.9")
    assert parse("v2.1.3-rc.1+meta") == (2, 1, 3, ["rc", "1"])
    assert parse("01.2.3") is None
