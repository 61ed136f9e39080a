"""The relay answers every backend call the schema can reach: each `Backend` method is
defined on `RelayBackend` (the live ones stream over `/relay/stream`, `relay.streams`), and
each method the relay asks an instance for is allowed on the wire."""

from __future__ import annotations

import ast
import inspect

from deploybot.backend.protocol import Backend
from deploybot.relay import aggregates, wire
from deploybot.relay.backend import RelayBackend


def _protocol_methods() -> set[str]:
    return {
        name
        for name in vars(Backend)
        if not name.startswith("_") and callable(getattr(Backend, name))
    }


def test_every_backend_method_answers_at_the_relay() -> None:
    missing = sorted(m for m in _protocol_methods() if not hasattr(RelayBackend, m))
    assert missing == []


def test_every_method_the_relay_calls_is_relayed() -> None:
    called = set()
    for module in (inspect.getmodule(RelayBackend), aggregates):
        tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and len(node.args) >= 2:
                name = node.args[1]
                func = node.func
                attr = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if attr in {"_call", "_each", "_ask"} and isinstance(name, ast.Constant):
                    called.add(name.value)
    assert "delivery_samples" in called and "releases_named" in called
    assert called <= wire.RELAYED
    for name in called:
        assert wire.method(name).name == name  # its types build from the protocol's hints
