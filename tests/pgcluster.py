"""A throwaway PostgreSQL cluster of the test's own, which it may stop and start at will
(the shared cluster of `scripts/prepare-machine.sh` serves every other test and is never
restarted)."""

from __future__ import annotations

import glob
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.servers import free_port


def _bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed; run `bash scripts/prepare-machine.sh`")
    return Path(found[-1])


class PgCluster:
    """initdb + pg_ctl in a temporary directory on a free port, run as the postgres user
    (as prepare-machine.sh does for the shared one)."""

    def __init__(self) -> None:
        self.bin = _bin()
        self.dir = Path(tempfile.mkdtemp(prefix="deploybot-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(f"{self.bin}/initdb -D {self.data} -A trust -U postgres")

    def _as_postgres(self, command: str) -> None:
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", command],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c max_connections=200"
        )
        self._as_postgres(
            f"{self.bin}/pg_ctl -D {self.data} -l {self.dir}/server.log -w"
            f" -o {shlex.quote(options)} start"
        )

    def stop(self) -> None:
        """A fast shutdown: every client connection is terminated, as in a real restart."""
        self._as_postgres(f"{self.bin}/pg_ctl -D {self.data} -m fast -w stop")

    def remove(self) -> None:
        subprocess.run(
            [
                "su",
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                f"{self.bin}/pg_ctl -D {self.data} -m immediate -w stop",
            ],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.dir, ignore_errors=True)
