"""Stack namespaces: one pattern per instance names every Swarm object of an application."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deploybot.config import Settings
from deploybot.namespaces import StackNamespaces, check_pattern


def test_default_is_the_application_itself() -> None:
    namespaces = Settings(environment="staging").namespaces
    assert namespaces.of("shop") == "shop"
    assert namespaces.service("shop", "web") == "shop_web"
    assert namespaces.application_of("shop") == "shop"


def test_environment_pattern_keeps_instances_apart() -> None:
    staging = Settings(environment="staging", stack_namespace="{environment}-{application}")
    production = staging.model_copy(update={"environment": "production"})
    assert staging.namespaces.of("shop") == "staging-shop"
    assert production.namespaces.of("shop") == "production-shop"
    assert staging.namespaces.service("shop", "web") == "staging-shop_web"
    assert staging.namespaces.application_of("staging-shop") == "shop"
    assert staging.namespaces.application_of("production-shop") is None
    assert staging.namespaces.application_of("staging-") is None


def test_suffix_pattern_round_trips() -> None:
    namespaces = StackNamespaces("{application}.{environment}", "dev")
    assert namespaces.of("a.b") == "a.b.dev"
    assert namespaces.application_of("a.b.dev") == "a.b"
    assert namespaces.application_of("a.b.prod") is None


@pytest.mark.parametrize(
    "pattern",
    ["{environment}", "{application}-{application}", "{app}", "-{application}", "{application} x"],
)
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        check_pattern(pattern)
    with pytest.raises(ValidationError):
        Settings(stack_namespace=pattern)
