"""Encryption at rest of the secrets deploybot keeps: AES-256-GCM from `cryptography`.

The key is `DEPLOYBOT_SECRETS_KEY` (32 bytes, URL-safe base64) or, when that is unset, the
file `<work_dir>/secrets.key`, created with mode 0600 on first use. Every process that
deploys (API and runners) must see the same key. Each value is sealed with a fresh 96-bit
nonce and bound to its application, environment, name and version (the associated data),
so a ciphertext copied onto another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from deploybot.config import Settings

KEY_FILE: Final = "secrets.key"
NONCE_BYTES: Final = 12


class SecretKeyError(Exception):
    """The key is unusable, or a value does not decrypt with it (wrong key, tampered row)."""


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SecretKeyError(f"{where} is not URL-safe base64") from None
    if len(key) != 32:
        raise SecretKeyError(f"{where} must hold 32 bytes (AES-256), not {len(key)}")
    return key


def new_key() -> str:
    """A fresh key, as `DEPLOYBOT_SECRETS_KEY` or the key file holds it."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def load_key(configured: str | None, work_dir: Path) -> bytes:
    """The configured key, else the work directory's key file (made 0600 on first use)."""
    if configured:
        return _decode_key(configured, "DEPLOYBOT_SECRETS_KEY")
    path = work_dir / KEY_FILE
    if not path.exists():
        work_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(new_key() + "\n")
    return _decode_key(path.read_text(), str(path))


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def seal(self, value: bytes, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, value, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, context.encode())
        except InvalidTag:
            raise SecretKeyError(
                f"the stored value of {context} does not decrypt: wrong secrets key?"
            ) from None


@lru_cache(maxsize=8)
def _box(configured: str | None, work_dir: str) -> SecretBox:
    return SecretBox(load_key(configured, Path(work_dir)))


def box_for(settings: Settings) -> SecretBox:
    """The instance's SecretBox (the key is read once per process)."""
    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    return _box(key, str(settings.work_dir.resolve()))
