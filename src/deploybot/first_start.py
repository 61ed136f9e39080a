"""Access on a server's start: the fixed admin token of the settings, or, on a database
without any token, a new admin token printed once and written to `<work dir>/admin-token`
(mode 0600), as Jupyter and Argo CD's initial admin secret do."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from deploybot.core import tokens
from deploybot.instance import Instance

logger = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin-token"
AUTH_OFF_WARNING = (
    "DEPLOYBOT_AUTH=off: authentication is disabled; anyone who can reach this server may "
    "deploy, record and read everything. Use it for throwaway local servers only."
)


def write_secret(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (created so, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


async def prepare_access(instance: Instance) -> None:
    settings = instance.settings
    if not settings.auth:
        logger.warning(AUTH_OFF_WARNING)
        return
    if settings.admin_token is not None:
        await tokens.ensure_token(
            instance.db,
            "admin (DEPLOYBOT_ADMIN_TOKEN)",
            ["admin"],
            settings.admin_token.get_secret_value(),
        )
        return
    if await tokens.count_tokens(instance.db) > 0:
        return
    created = await tokens.create_token(instance.db, "admin", ["admin"], created_by="first start")
    path = settings.work_dir / ADMIN_TOKEN_FILE
    write_secret(path, created.token + "\n")
    # Printed once, on stdout (not through logging: log shippers keep what they see).
    print(
        f"deploybot: created the first admin token (shown once, also in {path}):\n"
        f"  {created.token}\n"
        "Send it as `Authorization: Bearer <token>`; create narrower tokens with "
        "`deploybot token create` or the createApiToken mutation.",
        file=sys.stdout,
        flush=True,
    )
