"""Image references as the docker CLI stores them in a service spec.

The Engine API client behind `docker stack deploy` and `docker service create`
(moby's `imageWithTagString`) parses the reference as a normalised name and, unless
it is pinned by digest, adds the `latest` tag when it has none; the spec gets the
familiar form (`redis` → `redis:latest`, `docker.io/library/redis:7` → `redis:7`).
"""

from __future__ import annotations

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DEFAULT_DOMAIN, name


def normalize_image(reference: str) -> str:
    """The reference the docker CLI would store: familiar, tagged `latest` unless tagged or
    pinned by digest. A reference that does not parse is left as it is (Docker judges it)."""
    if not reference or any(c.isspace() for c in reference):
        return reference
    name, at, digest = reference.partition("@")
    head, _, last = name.rpartition("/")
    repository, colon, tag = last.partition(":")
    path = f"{head}/{repository}" if head else repository
    domain, remainder = _split_domain(path)
    if domain in (DEFAULT_DOMAIN, LEGACY_DOMAIN):
        domain = DEFAULT_DOMAIN
        if remainder.startswith(OFFICIAL_PREFIX) and "/" not in remainder[len(OFFICIAL_PREFIX) :]:
            remainder = remainder[len(OFFICIAL_PREFIX) :]
        familiar = remainder
    else:
        familiar = f"{domain}/{remainder}"
    if colon:
        familiar += f":{tag}"
    elif not at:
        familiar += ":latest"
    return f"{familiar}@{digest}" if at else familiar
