"""Bare git mirrors used by the "fetch" step of a deployment.

Each repository URL gets one bare mirror under a cache root.  Mirrors are kept
between deployments so that later fetches only transfer new objects, and image
build contexts are produced straight from a commit's tree (no checkout, so
concurrent deployments of different commits never share a work tree).

Everything here is blocking (libgit2 does network and disk I/O); async callers
use the ``*_async`` wrappers, which run the work in a thread. Writing a tree as a
build context's tar is `tree_archive.py`'s.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

import pygit2
from pygit2.enums import CredentialType, FetchPrune, FileMode, ReferenceFilter
from pygit2.remotes import Remote

from deploybot.runner.tree_archive import tree_archive

__all__ = [
    "SHORT_SHA_LENGTH",
    "CredentialCallbacks",
    "GitCredentials",
    "GitError",
    "MirrorCache",
    "ResolvedCommit",
    "redact_url",
    "short_sha",
]

SHORT_SHA_LENGTH = 7
"""Length of abbreviated shas shown to users (git's default)."""

FETCH_REFSPECS = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
"""Mirror branches and tags under their own names, forcing non-fast-forward updates."""

_HEX_RE = re.compile(r"[0-9a-fA-F]{4,40}")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# scp-like ssh syntax ([user@]host:path), as git itself recognises it: no slash before the colon.
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:]+):(?P<path>.*)$")
_SLUG_RE = re.compile(r"[^A-Za-z0-9._-]+")
_VERSION_RE = re.compile(r"^[vV]?(?P<nums>\d+(?:\.\d+)*)(?:[-+.~_]?(?P<rest>.*))?$")
_NATURAL_RE = re.compile(r"(\d+)")
_MAX_SYMLINK_HOPS = 8


class GitError(Exception):
    """A repository could not be fetched, or the asked-for ref/sha/path does not exist.

    ``code`` is the machine-readable error code surfaced to API clients.
    """

    def __init__(self, message: str, *, code: str = "ARTIFACT_NOT_FOUND") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class GitCredentials:
    """Secrets for private repositories; kept out of URLs so they never reach logs."""

    token: str | None = None
    """HTTPS token (sent as ``x-access-token:<token>`` like GitHub) or ``user:password``."""
    username: str | None = None
    """HTTPS username to send with ``token`` (overrides ``x-access-token``)."""
    ssh_key_path: str | None = None
    """Private key file for ``ssh://`` and scp-like ``git@host:path`` URLs."""
    ssh_public_key_path: str | None = None
    ssh_passphrase: str | None = None

    def __repr__(self) -> str:
        # Dataclass repr would print the token/passphrase.
        return (
            f"GitCredentials(token={'***' if self.token else None}, "
            f"username={self.username!r}, ssh_key_path={self.ssh_key_path!r})"
        )

    def secrets(self) -> list[str]:
        """Values that must never appear in messages."""
        values = [self.token, self.ssh_passphrase]
        if self.token and ":" in self.token:
            values.append(self.token.split(":", 1)[1])
        return [v for v in values if v]


@dataclass(frozen=True)
class ResolvedCommit:
    """The commit a deployment will build, with the metadata shown to users."""

    sha: str
    """Full 40-hex sha."""
    ref: str | None
    """Branch/tag asked for (e.g. ``"main"``); the default branch when neither ref nor sha
    was asked; ``None`` when only a sha was asked."""
    tags: list[str]
    """Tags pointing at the commit (annotated and lightweight), highest version first."""
    message: str
    """First line of the commit message."""
    author: str
    """``"Name <email>"``."""
    committed_at: datetime
    """Commit (committer) time, timezone-aware UTC."""

    @property
    def short_sha(self) -> str:
        return short_sha(self.sha)


def short_sha(sha: str) -> str:
    """Abbreviate a sha the way git shows it by default."""
    return sha[:SHORT_SHA_LENGTH]


def redact_url(url: str) -> str:
    """Strip secrets from a URL so it can be logged or shown in errors.

    For http(s) the whole user part goes (``https://TOKEN@host`` is common); for
    other schemes only the password is hidden, the user (``git@``) is not secret.
    """
    if not _SCHEME_RE.match(url):
        return url
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if username is None and password is None:
        return url
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    hostport = f"{host}:{port}" if port is not None else host
    if parts.scheme.lower() in ("http", "https"):
        netloc = f"***@{hostport}"
    elif password is not None:
        netloc = f"{username}:***@{hostport}"
    else:
        netloc = f"{username}@{hostport}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _is_local(url: str) -> bool:
    """A plain filesystem path (not a URL and not scp-like ssh syntax)."""
    if _SCHEME_RE.match(url):
        return False
    # "host:path" is ssh unless such a local path really exists (git's own rule is similar)
    return not _SCP_RE.match(url) or os.path.exists(url)


def _remote_url(url: str) -> str:
    """The URL handed to libgit2: local paths are made absolute so the cache key is stable."""
    if _is_local(url):
        return str(Path(url).expanduser().resolve())
    return url


def _split_host_path(url: str) -> str:
    """``host/path`` for naming a mirror directory, without any credentials."""
    if _is_local(url):
        return _remote_url(url)
    if _SCHEME_RE.match(url):
        try:
            parts = urlsplit(url)
            return f"{parts.hostname or ''}{parts.path}"
        except ValueError:
            return url
    match = _SCP_RE.match(url)
    return f"{match['host']}/{match['path']}" if match else url


def _normalise_subpath(path: str, what: str) -> str:
    """Turn a user-supplied in-repo path into ``a/b/c`` ("" for the root)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise GitError(f"{what} {path!r} must not contain '..'")
    return "/".join(parts)


def _tag_sort_key(name: str) -> tuple[tuple[int, ...], int, tuple[tuple[int, int | str], ...]]:
    match = _VERSION_RE.match(name)
    assert match is not None
    nums = tuple(int(n) for n in match["nums"].split("."))
    nums = nums + (0,) * (8 - len(nums)) if len(nums) < 8 else nums
    rest = match["rest"] or ""
    natural = tuple(
        (1, int(part)) if part.isdigit() else (0, part) for part in _NATURAL_RE.split(rest) if part
    )
    # A release (no suffix) ranks above its pre-releases.
    return nums, 0 if rest else 1, natural


def _sort_tags(tags: list[str]) -> list[str]:
    """Version-like tags highest first, then the rest alphabetically."""
    versions = [t for t in tags if _VERSION_RE.match(t)]
    others = sorted(t for t in tags if not _VERSION_RE.match(t))
    versions.sort(key=lambda t: (_tag_sort_key(t), t), reverse=True)
    return versions + others


class CredentialCallbacks(pygit2.RemoteCallbacks):
    """Answers libgit2's credential requests from a :class:`GitCredentials`.

    libgit2 asks again after every rejected credential, forever, so each credential
    kind is offered once per fetch; a second request for it means it was rejected.
    """

    def __init__(self, credentials: GitCredentials | None) -> None:
        super().__init__()
        self._creds = credentials or GitCredentials()
        self._offered: set[str] = set()

    def _offer(self, kind: str) -> None:
        if kind in self._offered:
            raise GitError("authentication failed (credentials rejected)")
        self._offered.add(kind)

    def credentials(
        self,
        url: str,
        username_from_url: str | None,
        allowed_types: CredentialType,
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        creds = self._creds
        ssh_user = username_from_url or creds.username or "git"
        if allowed_types & CredentialType.USERPASS_PLAINTEXT and creds.token:
            self._offer("userpass")
            if creds.username:
                return pygit2.UserPass(creds.username, creds.token)
            if ":" in creds.token:
                user, password = creds.token.split(":", 1)
                return pygit2.UserPass(user, password)
            return pygit2.UserPass("x-access-token", creds.token)
        if allowed_types & CredentialType.SSH_KEY:
            if creds.ssh_key_path:
                self._offer("ssh-key")
                return pygit2.Keypair(
                    ssh_user,
                    creds.ssh_public_key_path,
                    creds.ssh_key_path,
                    creds.ssh_passphrase or "",
                )
            if os.environ.get("SSH_AUTH_SOCK"):
                self._offer("ssh-agent")
                return pygit2.KeypairFromAgent(ssh_user)
        if allowed_types & CredentialType.USERNAME:
            self._offer("username")
            return pygit2.Username(ssh_user)
        raise GitError("authentication required but no usable credentials are configured")


class MirrorCache:
    """One bare mirror per repository URL under ``root``, reused across deployments.

    Fetches of the same mirror are serialised with a thread lock (pygit2 objects
    and a half-written mirror must not be shared) and an ``flock`` on a lock file,
    so several server processes can share one cache directory.  Reads
    (:meth:`read_file`, :meth:`tree_tar`) open their own repository handle and do
    not lock: libgit2 only ever adds objects atomically.
    """

    def __init__(self, root: Path, credentials: GitCredentials | None = None) -> None:
        self.root = Path(root)
        self.credentials = credentials
        self._guard = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}

    # -- naming and locking -------------------------------------------------

    def mirror_path(self, url: str) -> Path:
        """Stable, readable directory for ``url``: sanitised host/path plus a short hash.

        The hash is taken over the URL without its password/token, so rotating a
        token does not orphan the mirror and secrets never end up in file names.
        """
        key = redact_url(_remote_url(url)).replace("://***@", "://", 1).rstrip("/")
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        slug = _SLUG_RE.sub("_", _split_host_path(url)).strip("._-")
        slug = slug.removesuffix(".git")[-60:].strip("._-") or "repo"
        return self.root / f"{slug}-{digest}.git"

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(path, threading.Lock())
        with lock:
            self.root.mkdir(parents=True, exist_ok=True)
            lock_file = path.with_name(path.name + ".lock")
            with open(lock_file, "a+b") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # -- fetching -----------------------------------------------------------

    def _scrub(self, text: str, url: str) -> str:
        """Remove anything secret from a (libgit2) message before it is surfaced."""
        text = text.replace(url, redact_url(url))
        secrets = self.credentials.secrets() if self.credentials else []
        if _SCHEME_RE.match(url):
            try:
                parts = urlsplit(url)
            except ValueError:
                parts = None
            if parts is not None and parts.password:
                secrets.append(parts.password)
            if parts is not None and parts.username and parts.scheme in ("http", "https"):
                secrets.append(parts.username)  # https://TOKEN@host
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def fetch(self, url: str) -> pygit2.Repository:
        """Create the mirror if needed and bring it up to date (branches and tags, pruned).

        Always a full (non-shallow) fetch: deployments may ask for any older sha and
        ``file://`` remotes cannot be fetched shallowly anyway.
        """
        path = self.mirror_path(url)
        remote_url = _remote_url(url)
        shown = redact_url(url)
        if _is_local(url) and not Path(remote_url).exists():
            raise GitError(f"cannot fetch {shown}: no such file or directory")
        with self._locked(path):
            created = not (path / "HEAD").exists()
            if created:
                shutil.rmtree(path, ignore_errors=True)  # leftovers of an interrupted init
                repo = pygit2.init_repository(str(path), bare=True)
            else:
                repo = pygit2.Repository(str(path))
            try:
                remote = repo.remotes.create_anonymous(remote_url)
                remote.fetch(
                    FETCH_REFSPECS,
                    callbacks=CredentialCallbacks(self.credentials),
                    prune=FetchPrune.PRUNE,
                )
            except Exception as exc:  # libgit2 reports everything as GitError/KeyError/OSError
                if created:
                    repo.free()
                    shutil.rmtree(path, ignore_errors=True)
                reason = exc.message if isinstance(exc, GitError) else str(exc)
                raise GitError(f"cannot fetch {shown}: {self._scrub(reason, url)}") from None
            self._update_head(repo, remote)
            return repo

    @staticmethod
    def _update_head(repo: pygit2.Repository, remote: Remote) -> None:
        """Point the mirror's HEAD at the remote's default branch (used when no ref is asked)."""
        try:
            heads = remote.list_heads(connect=False)
        except (pygit2.GitError, ValueError):
            return
        for head in heads:
            target = head.symref_target
            if head.name == "HEAD" and target and target in repo.references:
                repo.references.create("HEAD", target, force=True)
                return

    def _open(self, url: str) -> pygit2.Repository | None:
        path = self.mirror_path(url)
        if not (path / "HEAD").exists():
            return None
        try:
            return pygit2.Repository(str(path))
        except pygit2.GitError:
            return None

    # -- resolving ----------------------------------------------------------

    def resolve(
        self, url: str, *, sha: str | None = None, ref: str | None = None
    ) -> ResolvedCommit:
        """Fetch, then pin ``ref`` (branch, tag or full refname) and/or ``sha`` to a commit.

        With both, the sha is what gets deployed and the ref is only recorded.  With
        neither, the remote's default branch is used.
        """
        shown = redact_url(url)
        if sha is not None and not _HEX_RE.fullmatch(sha):
            raise GitError(f"invalid commit sha {sha!r}: expected 4 to 40 hex digits")
        repo = self.fetch(url)
        if sha is not None:
            commit = self._lookup_sha(repo, sha, shown)
            return self._describe(repo, commit, ref)
        if ref is None:
            default = repo.references.get("HEAD")
            try:
                target = default.resolve() if default is not None else None
            except (KeyError, pygit2.GitError):
                target = None
            if target is None:
                raise GitError(f"{shown} has no default branch (empty repository?)")
            return self._describe(repo, target.peel(pygit2.Commit), target.shorthand)
        return self._describe(repo, self._lookup_ref(repo, ref, shown), ref)

    @staticmethod
    def _lookup_sha(repo: pygit2.Repository, sha: str, shown: str) -> pygit2.Commit:
        try:
            obj = repo.get(sha.lower())
        except pygit2.AmbiguousError:
            raise GitError(f"commit sha {sha} is ambiguous in {shown}; use more digits") from None
        if obj is not None:
            try:
                return obj.peel(pygit2.Commit)
            except (pygit2.GitError, ValueError):
                pass
        raise GitError(f"commit {sha} not found in {shown}")

    @staticmethod
    def _lookup_ref(repo: pygit2.Repository, ref: str, shown: str) -> pygit2.Commit:
        candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        if ref.startswith("refs/") or ref == "HEAD":
            candidates.insert(0, ref)
        for name in candidates:
            reference = repo.references.get(name)
            if reference is None:
                continue
            try:
                return reference.peel(pygit2.Commit)
            except (pygit2.GitError, ValueError, KeyError):
                raise GitError(f"ref {ref} in {shown} does not point at a commit") from None
        raise GitError(f"branch or tag {ref!r} not found in {shown}")

    @staticmethod
    def _describe(
        repo: pygit2.Repository, commit: pygit2.Commit, ref: str | None
    ) -> ResolvedCommit:
        sha = str(commit.id)
        tags = []
        for reference in repo.references.iterator(ReferenceFilter.TAGS):
            try:
                if str(reference.peel(pygit2.Commit).id) == sha:
                    tags.append(reference.shorthand)
            except (pygit2.GitError, ValueError, KeyError):
                continue  # tag of a tree/blob
        message = commit.raw_message.decode("utf-8", "replace").strip()
        author = commit.author
        return ResolvedCommit(
            sha=sha,
            ref=ref,
            tags=_sort_tags(tags),
            message=message.splitlines()[0] if message else "",
            author=f"{author.name} <{author.email}>",
            committed_at=datetime.fromtimestamp(commit.commit_time, tz=UTC),
        )

    # -- reading trees ------------------------------------------------------

    def _commit(self, url: str, sha: str) -> tuple[pygit2.Repository, pygit2.Commit]:
        """The commit from the existing mirror; fetch only if it is not there yet."""
        shown = redact_url(url)
        if not _HEX_RE.fullmatch(sha):
            raise GitError(f"invalid commit sha {sha!r}: expected 4 to 40 hex digits")
        repo = self._open(url)
        if repo is not None:
            try:
                return repo, self._lookup_sha(repo, sha, shown)
            except GitError:
                pass
        repo = self.fetch(url)
        return repo, self._lookup_sha(repo, sha, shown)

    def read_file(self, url: str, sha: str, path: str) -> bytes | None:
        """Contents of the file at ``path`` in the commit, or ``None`` if there is none.

        Symlinks inside the repository are followed (deploy configs are often
        linked); directories, submodules and links leaving the tree give ``None``.
        """
        _, commit = self._commit(url, sha)
        current = _normalise_subpath(path, "path")
        for _ in range(_MAX_SYMLINK_HOPS):
            if not current:
                return None
            try:
                obj = commit.tree[current]
            except KeyError:
                return None
            if not isinstance(obj, pygit2.Blob):
                return None
            if obj.filemode != FileMode.LINK:
                return obj.data
            target = obj.data.decode("utf-8", "surrogateescape")
            if target.startswith("/"):
                return None
            joined = PurePosixPath(current).parent / target
            try:
                current = _normalise_link(str(joined))
            except ValueError:
                return None
        return None

    def tree_tar(self, url: str, sha: str, subdir: str = ".") -> bytes:
        """Uncompressed tar of the commit's tree (or ``subdir`` of it): a docker build context.

        Modes are normalised like git does (0755 executables, 0644 otherwise) and
        every mtime is the commit time, so the same commit always gives the same
        bytes and docker's layer cache keeps working.  Submodules are skipped.
        """
        repo, commit = self._commit(url, sha)
        sub = _normalise_subpath(subdir, "build context")
        tree: pygit2.Tree = commit.tree
        if sub:
            try:
                obj = commit.tree[sub]
            except KeyError:
                raise GitError(
                    f"build context {subdir!r} not found in commit {short_sha(str(commit.id))}"
                ) from None
            if not isinstance(obj, pygit2.Tree):
                raise GitError(
                    f"build context {subdir!r} is not a directory in commit "
                    f"{short_sha(str(commit.id))}"
                )
            tree = obj
        return tree_archive(repo, tree, commit.commit_time)

    # -- async wrappers -----------------------------------------------------

    async def fetch_async(self, url: str) -> None:
        """:meth:`fetch` off the event loop (the repository handle is not returned: it is
        not safe to use from another thread)."""
        await asyncio.to_thread(self.fetch, url)

    async def resolve_async(
        self, url: str, *, sha: str | None = None, ref: str | None = None
    ) -> ResolvedCommit:
        return await asyncio.to_thread(self.resolve, url, sha=sha, ref=ref)

    async def read_file_async(self, url: str, sha: str, path: str) -> bytes | None:
        return await asyncio.to_thread(self.read_file, url, sha, path)

    async def tree_tar_async(self, url: str, sha: str, subdir: str = ".") -> bytes:
        return await asyncio.to_thread(self.tree_tar, url, sha, subdir)


def _normalise_link(path: str) -> str:
    """Collapse ``..`` in a symlink target; ``ValueError`` if it leaves the tree."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ValueError(path)
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)
