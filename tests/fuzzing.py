"""Property-based fuzzing of the GraphQL API: documents generated from `schema.graphql` by
hypothesis-graphql (valid operations and ones with one schema violation), sent to a running
server over HTTP. A finding is any 5xx, a body that is not JSON, or an error without a
typed code (`extensions.code`) or that says "Internal server error".

Used by `scripts/fuzz_graphql.py` (a budget of thousands of documents) and by a short
sample in the suite (`tests/test_fuzz.py`)."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema

from tests.servers import AUTH_HEADERS

SCHEMA = (Path(__file__).resolve().parents[1] / "schema.graphql").read_text()

# Fields whose side effects would leave the test's server: deploys are queued but never
# run (the server runs without a runner), and URLs stay on loopback.
_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-_.:/ ", max_size=40)


def _string(value: Any) -> graphql.StringValueNode:
    return graphql.StringValueNode(value=str(value))


CUSTOM_SCALARS = {
    "DateTime": st.one_of(
        st.datetimes().map(lambda d: _string(d.isoformat())),
        _TEXT.map(_string),
    ),
    "JSON": st.one_of(
        _TEXT.map(_string),
        st.integers(-(2**40), 2**40).map(lambda n: graphql.IntValueNode(value=str(n))),
        st.just(graphql.ObjectValueNode(fields=())),
    ),
}


@dataclass
class Findings:
    sent: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    def check(self, document: str, response: httpx.Response) -> None:
        self.sent += 1
        if response.status_code >= 500:
            self.problems.append((document, f"HTTP {response.status_code}: {response.text[:300]}"))
            return
        try:
            body = response.json()
        except ValueError:
            self.problems.append((document, f"not JSON: {response.text[:300]}"))
            return
        for error in body.get("errors") or []:
            message = str(error.get("message", ""))
            code = (error.get("extensions") or {}).get("code")
            if "Internal server error" in message or (code is None and _from_execution(error)):
                self.problems.append((document, f"{code}: {message}"))
                return


def _from_execution(error: dict[str, Any]) -> bool:
    """Errors with a `path` came from executing a field: those must carry a code. Errors
    without one are the document's own (parse/validation), which graphql-core words."""
    return bool(error.get("path"))


def fuzz(
    base_url: str,
    *,
    examples: int,
    headers: dict[str, str] | None = None,
    mode: Mode = Mode.POSITIVE,
    seed: int | None = None,
) -> Findings:
    findings = Findings()
    client = httpx.Client(base_url=base_url, headers=headers or AUTH_HEADERS, timeout=30)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is not None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, mode=mode))
    def send(document: object) -> None:
        text = str(document)
        findings.check(text, client.post("/graphql", json={"query": text}))

    try:
        send()
    finally:
        client.close()
    return findings
