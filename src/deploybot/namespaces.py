"""Stack namespaces: where an application's services, networks, configs and secrets live on
the Swarm. Every Swarm name of an application is derived here, from the instance's
`DEPLOYBOT_STACK_NAMESPACE` pattern, so several instances (staging and production, say) can
share one Swarm without touching each other's stacks."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Final

DEFAULT_PATTERN: Final = "{application}"
PLACEHOLDERS: Final = frozenset({"application", "environment"})
_NAME: Final = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def check_pattern(pattern: str) -> str:
    """A valid pattern names `{application}` once and `{environment}` at most once, and its
    literal text is what a stack name may hold; raises ValueError otherwise."""
    fields = [field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None]
    unknown = set(fields) - PLACEHOLDERS
    if unknown:
        raise ValueError(f"stack_namespace: unknown placeholder(s) {sorted(unknown)}")
    if fields.count("application") != 1 or fields.count("environment") > 1:
        raise ValueError(
            "stack_namespace names {application} once (and {environment} at most once)"
        )
    if not _NAME.fullmatch(pattern.format(application="a", environment="e")):
        raise ValueError(f"stack_namespace {pattern!r} does not make a valid stack name")
    return pattern


@dataclass(frozen=True)
class StackNamespaces:
    """The pattern of one instance, bound to its environment."""

    pattern: str = DEFAULT_PATTERN
    environment: str = "local"

    def of(self, application: str) -> str:
        """The stack namespace (`com.docker.stack.namespace`) of an application."""
        return self.pattern.format(application=application, environment=self.environment)

    def service(self, application: str, service: str) -> str:
        """The Swarm name of one service of an application's stack."""
        return f"{self.of(application)}_{service}"

    def application_of(self, namespace: str) -> str | None:
        """The application whose stack `namespace` is, None for another instance's stack."""
        prefix, _, suffix = self.of("\0").partition("\0")
        if len(namespace) <= len(prefix) + len(suffix):
            return None
        if not (namespace.startswith(prefix) and namespace.endswith(suffix)):
            return None
        application = namespace[len(prefix) : len(namespace) - len(suffix)]
        return application if self.of(application) == namespace else None
