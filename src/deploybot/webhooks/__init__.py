"""Provider webhooks: each provider's verification and the mapping of its payloads.

One module per provider (`github`, `gitlab`, `bitbucket`, `dockerhub`, `travis`), each a
`Provider`: `verify` checks the request came from the provider (constant-time), `parse`
turns its payload into a `HookEvent`. Nothing here touches the database; the core
(`core.webhooks`) decides what an event deploys.
"""

from __future__ import annotations

from deploybot.webhooks.base import (
    BadPayload,
    BadSignature,
    HookEvent,
    HookRequest,
    Provider,
    ProviderName,
)
from deploybot.webhooks.bitbucket import BITBUCKET
from deploybot.webhooks.dockerhub import DOCKER_HUB
from deploybot.webhooks.github import GITHUB
from deploybot.webhooks.gitlab import GITLAB
from deploybot.webhooks.travis import TRAVIS

PROVIDERS: dict[ProviderName, Provider] = {
    ProviderName.GITHUB: GITHUB,
    ProviderName.GITLAB: GITLAB,
    ProviderName.BITBUCKET: BITBUCKET,
    ProviderName.DOCKER_HUB: DOCKER_HUB,
    ProviderName.TRAVIS: TRAVIS,
}

__all__ = [
    "PROVIDERS",
    "BadPayload",
    "BadSignature",
    "HookEvent",
    "HookRequest",
    "Provider",
    "ProviderName",
]
