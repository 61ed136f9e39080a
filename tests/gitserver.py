"""A real ``git daemon`` on 127.0.0.1 plus pygit2 helpers to build the repositories it serves.

Tests fetch over ``git://`` so that the network code path (and shallow-capable
transport) is exercised exactly like a real remote, without needing the ``git``
CLI for anything but the daemon itself.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO

import pygit2
from pygit2.enums import FileMode, ObjectType

_AUTHOR_NAME = "Deploy Tester"
_AUTHOR_EMAIL = "tester@example.com"

# A nested change set: name -> (blob id, mode) for files, nested dict for directories,
# None to delete.
_Changes = dict[str, "tuple[pygit2.Oid, int] | _Changes | None"]


def _daemon_command() -> list[str]:
    git = shutil.which("git")
    if git:
        return [git, "daemon"]
    for candidate in ("/usr/lib/git-core/git-daemon", "/usr/libexec/git-core/git-daemon"):
        if Path(candidate).exists():
            return [candidate]
    raise RuntimeError("git daemon not found (install git)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signature(when: datetime | None = None) -> pygit2.Signature:
    """A fixed author; ``when`` pins the commit time (naive datetimes count as UTC)."""
    if when is None:
        return pygit2.Signature(_AUTHOR_NAME, _AUTHOR_EMAIL)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    return pygit2.Signature(_AUTHOR_NAME, _AUTHOR_EMAIL, int(when.timestamp()), minutes)


class GitServer:
    """Serves every bare repository under ``base_dir`` as ``git://127.0.0.1:<port>/<name>.git``.

    Pushing is enabled too (``receive-pack``), in case a test wants to push with a client.
    """

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- daemon lifecycle ---------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start the daemon on a free port and wait until it accepts connections."""
        if self._proc is not None:
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _ in range(5):  # the free port can be taken between probing and binding
            port = _free_port()
            log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the daemon
            proc = subprocess.Popen(
                [
                    *_daemon_command(),
                    "--reuseaddr",
                    f"--base-path={self.base_dir}",
                    "--export-all",
                    "--enable=receive-pack",
                    "--listen=127.0.0.1",
                    f"--port={port}",
                    str(self.base_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            if self._wait_ready(proc, port, timeout):
                self._proc, self._log, self.port = proc, log, port
                return
            proc.kill()
            proc.wait()
            log.seek(0)
            last_error = log.read().decode(errors="replace")
            log.close()
        raise RuntimeError(f"git daemon did not start: {last_error}")

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> GitServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- repositories -------------------------------------------------------

    def url(self, name: str) -> str:
        if self.port is None:
            raise RuntimeError("GitServer is not started")
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def path(self, name: str) -> Path:
        """On-disk bare repository (usable as a local-path or ``file://`` remote)."""
        return self.base_dir / f"{name}.git"

    def create_repo(self, name: str) -> Path:
        """Create an empty bare repository (HEAD -> refs/heads/main) if it does not exist."""
        path = self.path(name)
        if not (path / "HEAD").exists():
            pygit2.init_repository(str(path), bare=True, initial_head="main")
        return path

    def repo(self, name: str) -> pygit2.Repository:
        return pygit2.Repository(str(self.create_repo(name)))

    def commit(
        self,
        name: str,
        files: Mapping[str, str | bytes],
        *,
        branch: str = "main",
        message: str = "test commit",
        tag: str | None = None,
        tag_message: str | None = None,
        executable: Iterable[str] = (),
        symlinks: Mapping[str, str] | None = None,
        remove: Iterable[str] = (),
        parent_from: str | None = None,
        replace: bool = False,
        when: datetime | None = None,
    ) -> str:
        """Commit ``files`` on ``branch`` of repository ``name`` and return the full sha.

        The tree is the parent's tree with ``files``/``symlinks`` written and ``remove``
        deleted (nested paths like ``a/b/c.txt`` work); ``replace=True`` starts from an
        empty tree instead.  The parent is the branch tip, or ``parent_from`` (a
        branch, tag or sha) when given, which is how a new branch is forked.  ``tag``
        creates a lightweight tag, or an annotated one when ``tag_message`` is set.
        The first commit of a repository also points HEAD at ``branch``.
        """
        repo = self.repo(name)
        branch_ref = f"refs/heads/{branch}"
        parent: pygit2.Commit | None = None
        if parent_from is not None:
            parent = repo.revparse_single(parent_from).peel(pygit2.Commit)
        elif branch_ref in repo.references:
            parent = repo.references[branch_ref].peel(pygit2.Commit)

        exec_paths = set(executable)
        changes: _Changes = {}
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            mode = FileMode.BLOB_EXECUTABLE if path in exec_paths else FileMode.BLOB
            _put(changes, path, (repo.create_blob(data), mode))
        for path, target in (symlinks or {}).items():
            _put(changes, path, (repo.create_blob(target.encode()), FileMode.LINK))
        for path in remove:
            _put(changes, path, None)

        base = None if replace or parent is None else parent.tree
        tree_id = _write_tree(repo, base, changes)
        sig = signature(when)
        first_commit = not any(r.startswith("refs/heads/") for r in repo.references)
        oid = repo.create_commit(
            None, sig, sig, message, tree_id, [parent.id] if parent is not None else []
        )
        repo.references.create(branch_ref, oid, force=True)
        if first_commit:
            repo.references.create("HEAD", branch_ref, force=True)
        if tag is not None:
            self.tag(name, tag, str(oid), message=tag_message, when=when)
        return str(oid)

    def tag(
        self,
        name: str,
        tag: str,
        target: str,
        *,
        message: str | None = None,
        when: datetime | None = None,
    ) -> None:
        """Tag ``target`` (branch, tag or sha): lightweight, or annotated when ``message``."""
        repo = self.repo(name)
        commit = repo.revparse_single(target).peel(pygit2.Commit)
        if message is None:
            repo.references.create(f"refs/tags/{tag}", commit.id, force=True)
        else:
            repo.create_tag(tag, commit.id, ObjectType.COMMIT, signature(when), message)

    def delete_ref(self, name: str, ref: str) -> None:
        """Delete a branch/tag (``refs/...`` or a branch name) to test pruning."""
        refname = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
        self.repo(name).references.delete(refname)

    def head(self, name: str, branch: str = "main") -> str:
        return str(self.repo(name).references[f"refs/heads/{branch}"].peel(pygit2.Commit).id)


def _put(changes: _Changes, path: str, value: tuple[pygit2.Oid, int] | None) -> None:
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        raise ValueError(f"empty path {path!r}")
    node = changes
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"{path!r}: {part!r} is both a file and a directory")
        node = child
    node[parts[-1]] = value


def _write_tree(repo: pygit2.Repository, base: pygit2.Tree | None, changes: _Changes) -> pygit2.Oid:
    builder = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
    for name, change in changes.items():
        existing = base[name] if base is not None and name in base else None
        if change is None:
            if existing is not None:
                builder.remove(name)
        elif isinstance(change, dict):
            sub_base = existing if isinstance(existing, pygit2.Tree) else None
            sub_id = _write_tree(repo, sub_base, change)
            if len(repo[sub_id].peel(pygit2.Tree)) == 0:
                if existing is not None:
                    builder.remove(name)
            else:
                builder.insert(name, sub_id, FileMode.TREE)
        else:
            blob_id, mode = change
            builder.insert(name, blob_id, mode)
    return builder.write()


class GitHttpServer:
    """Smart HTTP (`git http-backend`) behind HTTP Basic auth, for private-repository tests.

    Serves the bare repositories under ``base_dir`` at
    ``http://127.0.0.1:<port>/<name>.git`` and answers 401 unless the request
    carries ``username``/``password``.
    """

    def __init__(self, base_dir: Path, username: str, password: str) -> None:
        import base64

        self.base_dir = base_dir
        self._expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.port = _free_port()
        self.requests: list[tuple[str, bool]] = []
        self._server: object | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def _app(self, environ: dict[str, object], start_response: object) -> list[bytes]:
        import os

        authorized = environ.get("HTTP_AUTHORIZATION") == self._expected
        self.requests.append((str(environ.get("PATH_INFO")), authorized))
        if not authorized:
            start_response(  # type: ignore[operator]
                "401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')]
            )
            return [b"authentication required\n"]
        length = int(str(environ.get("CONTENT_LENGTH") or 0))
        body = environ["wsgi.input"].read(length) if length else b""  # type: ignore[attr-defined]
        cgi_env = {
            "GIT_PROJECT_ROOT": str(self.base_dir),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "REMOTE_USER": "tester",
            "REMOTE_ADDR": "127.0.0.1",
        }
        for key in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE"):
            cgi_env[key] = str(environ.get(key) or "")
        cgi_env["CONTENT_LENGTH"] = str(len(body))
        if environ.get("HTTP_CONTENT_ENCODING"):
            cgi_env["HTTP_CONTENT_ENCODING"] = str(environ["HTTP_CONTENT_ENCODING"])
        if environ.get("HTTP_GIT_PROTOCOL"):
            cgi_env["GIT_PROTOCOL"] = str(environ["HTTP_GIT_PROTOCOL"])
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=cgi_env, capture_output=True, check=True
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = "200 OK"
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = value
            elif name:
                headers.append((name, value))
        start_response(status, headers)  # type: ignore[operator]
        return [payload]

    def start(self) -> None:
        import threading
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        server = make_server("127.0.0.1", self.port, self._app, handler_class=Quiet)  # type: ignore[arg-type]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]


class SshServer:
    """A real sshd on 127.0.0.1 that accepts one generated key, for SSH-key fetch tests.

    Repositories are addressed by absolute path:
    ``ssh://root@127.0.0.1:<port>/<path to bare repo>``.
    """

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.port = _free_port()
        self.client_key = base_dir / "client_key"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import getpass

        self.base_dir.mkdir(parents=True, exist_ok=True)
        host_key = self.base_dir / "host_key"
        for key in (host_key, self.client_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        (self.base_dir / "authorized_keys").write_bytes(
            (self.base_dir / "client_key.pub").read_bytes()
        )
        config = self.base_dir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {self.base_dir}/authorized_keys\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"PermitRootLogin prohibit-password\nPidFile {self.base_dir}/sshd.pid\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)
        self.user = getpass.getuser()
        self._proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(self.base_dir / "sshd.log")]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("sshd did not start")

    def url(self, repo: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo}"

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
