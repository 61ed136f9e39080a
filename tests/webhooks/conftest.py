"""Webhook tests share the API-level server of the resolver tests."""

from tests.resolvers.conftest import api

__all__ = ["api"]
