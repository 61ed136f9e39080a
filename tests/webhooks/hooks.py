"""What the webhook tests share: the documented payloads, signing them as each provider
does, and the GraphQL that configures hooks."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

from tests.servers import Client

PAYLOADS = Path(__file__).parent / "payloads"

CREATE = """
mutation($input: CreateWebhookInput!) {
  createWebhook(input: $input) {
    secret url userErrors { field message code }
    webhook { id number provider repository application branches tags path url options }
  }
}
"""

DELIVERIES = """
query($id: ID!) {
  webhookDeliveries(webhook: $id, first: 50) {
    event deliveryId outcome reason payload headers deployment { number }
  }
}
"""

DEPLOYMENT = """
query($id: ID!) {
  deployment(id: $id) {
    number state trigger provider actor commitSha ref version repositoryUrl application
    originalRequest mappedRequest errorCode errorMessage description
    steps { name status error }
  }
}
"""


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return copy.deepcopy(data)


def body_of(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(
    secret: str, body: bytes, event: str = "push", delivery: str | None = None
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": github_signature(secret, body),
    }


def create_hook(client: Client, **input: Any) -> dict[str, Any]:
    result = client.query(CREATE, {"input": input})["createWebhook"]
    assert result["userErrors"] == [], result["userErrors"]
    return dict(result)


def github_push(repository: str, sha: str, ref: str = "refs/heads/main") -> dict[str, Any]:
    data = payload("github-push.json")
    data["ref"] = ref
    data["after"] = sha
    data["head_commit"]["id"] = sha
    data["commits"][0]["id"] = sha
    data["repository"]["full_name"] = repository
    return data


def travis_keys() -> tuple[Any, str]:
    """A key pair as Travis has one: the private key signs, the PEM public key verifies."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def travis_request(private: Any, data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Travis' form body (`payload=<json>`) and its `Signature` header (RSA-SHA1, base64)."""
    import base64
    from urllib.parse import urlencode

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    raw = json.dumps(data)
    signature = private.sign(raw.encode(), padding.PKCS1v15(), hashes.SHA1())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Signature": base64.b64encode(signature).decode(),
        "Travis-Repo-Slug": f"{data['repository']['owner_name']}/{data['repository']['name']}",
    }
    return urlencode({"payload": raw}).encode(), headers
