"""Travis CI: a form body whose `payload` field is the JSON; `Signature` is the base64
RSA-SHA1 signature of that field, checked against the hook's public key (Travis publishes
it at /config); a finished, passed build of a branch deploys its commit."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from deploybot.webhooks.base import (
    BadPayload,
    BadSignature,
    HookEvent,
    HookRequest,
    ProviderName,
    body_digest,
    json_body,
    text,
)

KEPT_HEADERS = ("travis-repo-slug", "user-agent")
PASSED = {"passed", "fixed"}


def form_payload(body: bytes) -> bytes:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise BadPayload("the body is not a form") from None
    values = fields.get("payload")
    if not values:
        raise BadPayload("the form has no `payload` field")
    return values[0].encode()


class Travis:
    name = ProviderName.TRAVIS

    def verify(self, request: HookRequest, secret: str, public_key: str | None) -> None:
        if not public_key:
            raise BadSignature("this hook has no Travis public key to check signatures with")
        try:
            signature = base64.b64decode(request.header("signature") or "", validate=True)
            payload = form_payload(request.body)
        except (binascii.Error, BadPayload):
            raise BadSignature("Signature is missing or not base64 of the payload") from None
        key = serialization.load_pem_public_key(public_key.encode())
        if not isinstance(key, rsa.RSAPublicKey):
            raise BadSignature("the hook's public key is not an RSA key")
        try:
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA1())
        except InvalidSignature:
            raise BadSignature("Signature does not match the payload") from None

    def parse(self, request: HookRequest) -> list[HookEvent]:
        raw = form_payload(request.body)
        payload = json_body(raw)
        owner, name = text(payload, "repository", "owner_name"), text(payload, "repository", "name")
        sha, branch = text(payload, "commit"), text(payload, "branch")
        if sha is None or branch is None:
            raise BadPayload("a Travis build needs `commit` and `branch`")
        status = (text(payload, "status_message") or "").lower()
        kind = "tag" if text(payload, "tag") else "branch"
        ignored = None
        if text(payload, "type") == "pull_request":
            ignored = "pull request builds deploy nothing"
        elif status not in PASSED:
            ignored = f"build status is {status or 'unknown'}, not passed"
        return [
            HookEvent(
                event=f"build:{text(payload, 'type') or 'push'}",
                delivery_id=f"{payload.get('id')}:{payload.get('finished_at')}"
                if payload.get("id")
                else body_digest(raw),
                payload=payload,
                kind=kind,
                repository=f"{owner}/{name}" if owner and name else None,
                clone_url=text(payload, "repository", "url"),
                ref=text(payload, "tag") or branch,
                commit_sha=sha,
                actor=text(payload, "committer_name") or text(payload, "author_name"),
                commit_message=text(payload, "message"),
                headers={h: v for h in KEPT_HEADERS if (v := request.header(h))},
                ignored=ignored,
            )
        ]


TRAVIS = Travis()
