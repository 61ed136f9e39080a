"""Mirror cache tests against a real ``git daemon`` (no mocks: libgit2 does the network I/O)."""

from __future__ import annotations

import io
import itertools
import stat
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import CredentialType

from deploybot.runner.git import (
    CredentialCallbacks,
    GitCredentials,
    GitError,
    MirrorCache,
    ResolvedCommit,
    redact_url,
    short_sha,
)

try:  # repo root on sys.path (python -m pytest, or tests/ is a package)
    from tests.gitserver import GitServer
except ModuleNotFoundError:  # plain pytest: rootdir-relative import puts tests/ on sys.path
    from gitserver import GitServer  # type: ignore[no-redef,import-not-found]

WHEN = datetime(2024, 5, 17, 12, 30, 0, tzinfo=UTC)
_names = itertools.count()


@pytest.fixture(scope="module")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    server = GitServer(tmp_path_factory.mktemp("git-daemon"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def repo_name(git_server: GitServer) -> str:
    """A fresh repository name per test, so tests sharing the daemon never interfere."""
    name = f"repo{next(_names)}"
    git_server.create_repo(name)
    return name


@pytest.fixture
def cache(tmp_path: Path) -> MirrorCache:
    return MirrorCache(tmp_path / "mirrors")


def _tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name: m for m in tar.getmembers()}


def _tar_read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        fh = tar.extractfile(name)
        assert fh is not None
        return fh.read()


# -- resolve --------------------------------------------------------------------


def test_resolve_branch_gives_head_and_metadata(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    git_server.commit(repo_name, {"a.txt": "1"}, message="first")
    head = git_server.commit(
        repo_name, {"a.txt": "2"}, message="Second commit\n\nwith a body", when=WHEN
    )

    resolved = cache.resolve(git_server.url(repo_name), ref="main")

    assert resolved == ResolvedCommit(
        sha=head,
        ref="main",
        tags=[],
        message="Second commit",
        author="Deploy Tester <tester@example.com>",
        committed_at=WHEN,
    )
    assert resolved.committed_at.tzinfo is not None
    assert resolved.short_sha == head[:7] == short_sha(head)


def test_resolve_other_branch_and_default_branch(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    main = git_server.commit(repo_name, {"a.txt": "main"})
    feature = git_server.commit(
        repo_name, {"b.txt": "feature"}, branch="feature/x", parent_from="main"
    )
    url = git_server.url(repo_name)

    assert cache.resolve(url, ref="feature/x").sha == feature
    assert cache.resolve(url, ref="refs/heads/feature/x").sha == feature
    default = cache.resolve(url)  # neither ref nor sha: the remote's default branch
    assert (default.sha, default.ref) == (main, "main")


def test_resolve_tags_annotated_and_lightweight(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    first = git_server.commit(repo_name, {"a": "1"}, tag="v1.0.0")  # lightweight
    second = git_server.commit(repo_name, {"a": "2"}, tag="v1.10.0", tag_message="release 1.10")
    git_server.tag(repo_name, "v1.9.0", second)
    git_server.tag(repo_name, "stable", second, message="annotated, not a version")
    git_server.tag(repo_name, "v1.10.0-rc1", second)
    url = git_server.url(repo_name)

    by_light = cache.resolve(url, ref="v1.0.0")
    assert (by_light.sha, by_light.ref, by_light.tags) == (first, "v1.0.0", ["v1.0.0"])

    by_annotated = cache.resolve(url, ref="v1.10.0")
    assert by_annotated.sha == second  # peeled to the commit, not the tag object
    # versions highest first (numeric, release above its rc), then other tags
    assert by_annotated.tags == ["v1.10.0", "v1.10.0-rc1", "v1.9.0", "stable"]
    assert cache.resolve(url, ref="refs/tags/stable").sha == second
    # the branch head carries the tags too
    assert cache.resolve(url, ref="main").tags == by_annotated.tags


def test_branch_wins_over_tag_with_same_name(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    tagged = git_server.commit(repo_name, {"a": "1"}, tag="prod")
    branch = git_server.commit(repo_name, {"a": "2"}, branch="prod", parent_from="main")
    url = git_server.url(repo_name)

    assert cache.resolve(url, ref="prod").sha == branch
    assert cache.resolve(url, ref="refs/tags/prod").sha == tagged


def test_resolve_full_and_abbreviated_sha(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    old = git_server.commit(repo_name, {"a": "1"}, message="old")
    git_server.commit(repo_name, {"a": "2"}, message="new")
    url = git_server.url(repo_name)

    full = cache.resolve(url, sha=old)
    assert (full.sha, full.ref, full.message) == (old, None, "old")
    assert cache.resolve(url, sha=old[:7]).sha == old
    assert cache.resolve(url, sha=old[:4].upper()).sha == old
    # sha + ref: the sha is deployed, the ref recorded
    both = cache.resolve(url, sha=old[:10], ref="main")
    assert (both.sha, both.ref) == (old, "main")


def test_sha_not_in_repo(git_server: GitServer, repo_name: str, cache: MirrorCache) -> None:
    head = git_server.commit(repo_name, {"a": "1"})
    url = git_server.url(repo_name)
    missing = "0123456789abcdef0123456789abcdef01234567"
    assert missing != head

    with pytest.raises(GitError) as info:
        cache.resolve(url, sha=missing)
    assert info.value.code == "ARTIFACT_NOT_FOUND"
    assert missing in str(info.value)
    assert url in str(info.value)


def test_sha_of_a_tree_is_not_a_commit(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    git_server.commit(repo_name, {"a": "1"})
    tree_id = str(git_server.repo(repo_name).revparse_single("main").peel(pygit2.Tree).id)

    with pytest.raises(GitError, match="not found"):
        cache.resolve(git_server.url(repo_name), sha=tree_id)


@pytest.mark.parametrize("bad", ["abc", "xyz1234", "0" * 41, ""])
def test_malformed_sha_rejected_before_fetching(cache: MirrorCache, bad: str) -> None:
    with pytest.raises(GitError, match="invalid commit sha"):
        cache.resolve("git://127.0.0.1:1/never-contacted.git", sha=bad)
    assert not cache.root.exists() or not any(cache.root.iterdir())


def test_unknown_ref(git_server: GitServer, repo_name: str, cache: MirrorCache) -> None:
    git_server.commit(repo_name, {"a": "1"})

    with pytest.raises(GitError, match="'nope' not found") as info:
        cache.resolve(git_server.url(repo_name), ref="nope")
    assert info.value.code == "ARTIFACT_NOT_FOUND"


def test_empty_repository_has_no_default_branch(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    with pytest.raises(GitError, match="no default branch"):
        cache.resolve(git_server.url(repo_name))


def test_unknown_repo_on_daemon(git_server: GitServer, cache: MirrorCache) -> None:
    url = git_server.url("does-not-exist")

    with pytest.raises(GitError) as info:
        cache.resolve(url, ref="main")
    assert str(info.value).startswith(f"cannot fetch {url}: ")
    assert info.value.code == "ARTIFACT_NOT_FOUND"
    # a failed first fetch leaves no empty mirror behind
    assert not cache.mirror_path(url).exists()


def test_unreachable_port(cache: MirrorCache) -> None:
    url = "git://127.0.0.1:1/repo.git"

    with pytest.raises(GitError, match=r"cannot fetch git://127\.0\.0\.1:1/repo\.git: "):
        cache.resolve(url, ref="main")
    assert not cache.mirror_path(url).exists()


def test_missing_local_path(tmp_path: Path, cache: MirrorCache) -> None:
    with pytest.raises(GitError, match=r"cannot fetch .*no such file"):
        cache.resolve(str(tmp_path / "nowhere"), ref="main")


def test_credentials_never_appear_in_errors(tmp_path: Path) -> None:
    cache = MirrorCache(tmp_path / "m", GitCredentials(token="s3cr3t-token"))
    url = "https://user:hunter2-password@127.0.0.1:1/org/repo.git"

    with pytest.raises(GitError) as info:
        cache.resolve(url, ref="main")
    message = str(info.value)
    assert "cannot fetch https://***@127.0.0.1:1/org/repo.git" in message
    assert "hunter2" not in message and "s3cr3t" not in message
    assert "s3cr3t" not in repr(cache.credentials)
    assert "hunter2" not in str(cache.mirror_path(url))


# -- the mirror -----------------------------------------------------------------


def test_mirror_is_reused_and_sees_new_commits(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    url = git_server.url(repo_name)
    first = git_server.commit(repo_name, {"a": "1"})
    git_server.commit(repo_name, {"b": "1"}, branch="gone", parent_from="main")
    assert cache.resolve(url, ref="gone").ref == "gone"
    path = cache.mirror_path(url)
    marker = path / "deploybot-test-marker"
    marker.write_text("still the same directory")

    second = git_server.commit(repo_name, {"a": "2"})
    git_server.delete_ref(repo_name, "gone")
    resolved = cache.resolve(url, ref="main")

    assert resolved.sha == second != first
    assert cache.mirror_path(url) == path
    assert marker.read_text() == "still the same directory"
    assert [p.name for p in cache.root.iterdir() if p.is_dir()] == [path.name]
    assert pygit2.Repository(str(path)).is_bare
    # fetch prunes branches deleted upstream, old commits stay resolvable
    with pytest.raises(GitError, match="'gone' not found"):
        cache.resolve(url, ref="gone")
    assert cache.resolve(url, sha=first).sha == first


def test_mirror_path_is_stable_and_readable(tmp_path: Path) -> None:
    cache = MirrorCache(tmp_path)
    a = cache.mirror_path("https://github.com/acme/shop.git")

    assert a == cache.mirror_path("https://github.com/acme/shop.git")
    assert a.parent == tmp_path
    assert a.name.startswith("github.com_acme_shop-")
    assert a != cache.mirror_path("https://github.com/acme/shop-api.git")
    assert a != cache.mirror_path("https://gitlab.com/acme/shop.git")
    # the token is neither in the name nor does it change the mirror
    with_token = cache.mirror_path("https://TOKEN123@github.com/acme/shop.git")
    assert with_token == a and "TOKEN123" not in str(with_token)
    scp = cache.mirror_path("git@github.com:acme/shop.git")
    assert scp.name.startswith("github.com_acme_shop-") and scp != a


def test_concurrent_resolves_share_one_mirror(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    head = git_server.commit(repo_name, {"a": "1"})
    url = git_server.url(repo_name)

    # a second cache on the same root stands in for another server process (flock)
    other = MirrorCache(cache.root)
    caches = [cache, other] * 6

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda c: c.resolve(url, ref="main").sha, caches))

    assert results == [head] * 12
    assert len([p for p in cache.root.iterdir() if p.is_dir()]) == 1


def test_local_path_and_file_url(git_server: GitServer, repo_name: str, cache: MirrorCache) -> None:
    head = git_server.commit(repo_name, {"a.txt": "local"}, tag="v2")
    path = git_server.path(repo_name)

    by_path = cache.resolve(str(path), ref="main")
    by_url = cache.resolve(path.as_uri(), ref="v2")

    assert by_path.sha == by_url.sha == head
    assert by_url.tags == ["v2"]
    assert cache.mirror_path(str(path)) != cache.mirror_path(path.as_uri())
    assert cache.read_file(path.as_uri(), head, "a.txt") == b"local"


async def test_async_wrappers(git_server: GitServer, repo_name: str, cache: MirrorCache) -> None:
    head = git_server.commit(repo_name, {"Dockerfile": "FROM scratch\n"})
    url = git_server.url(repo_name)

    await cache.fetch_async(url)
    resolved = await cache.resolve_async(url, ref="main")
    assert resolved.sha == head
    assert await cache.read_file_async(url, head, "Dockerfile") == b"FROM scratch\n"
    assert "Dockerfile" in _tar_members(await cache.tree_tar_async(url, head))


# -- reading trees --------------------------------------------------------------


def test_read_file(git_server: GitServer, repo_name: str, cache: MirrorCache) -> None:
    old = git_server.commit(repo_name, {"deploy.yaml": "v: 1\n", "sub/dir/x.bin": b"\x00\xff"})
    new = git_server.commit(
        repo_name,
        {"deploy.yaml": "v: 2\n"},
        symlinks={"link.yaml": "deploy.yaml", "sub/up.yaml": "../deploy.yaml", "out": "../../x"},
    )
    url = git_server.url(repo_name)
    cache.resolve(url, ref="main")

    assert cache.read_file(url, new, "deploy.yaml") == b"v: 2\n"
    assert cache.read_file(url, old, "deploy.yaml") == b"v: 1\n"  # per commit, not per branch
    assert cache.read_file(url, new, "./sub/dir/x.bin") == b"\x00\xff"
    assert cache.read_file(url, short_sha(new), "deploy.yaml") == b"v: 2\n"
    assert cache.read_file(url, new, "missing.yaml") is None
    assert cache.read_file(url, new, "sub/dir") is None  # a directory is not a file
    assert cache.read_file(url, new, "sub/dir/x.bin/deeper") is None
    # symlinks inside the repository are followed; escaping ones are not
    assert cache.read_file(url, new, "link.yaml") == b"v: 2\n"
    assert cache.read_file(url, new, "sub/up.yaml") == b"v: 2\n"
    assert cache.read_file(url, new, "out") is None
    with pytest.raises(GitError, match="must not contain"):
        cache.read_file(url, new, "../etc/passwd")


def test_read_file_fetches_when_mirror_is_missing(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    head = git_server.commit(repo_name, {"a": "x"})
    url = git_server.url(repo_name)

    assert cache.read_file(url, head, "a") == b"x"  # no resolve() first
    with pytest.raises(GitError, match="not found"):
        cache.read_file(url, "f" * 40, "a")


def test_tree_tar(git_server: GitServer, repo_name: str, cache: MirrorCache) -> None:
    sha = git_server.commit(
        repo_name,
        {
            "Dockerfile": "FROM alpine\n",
            "entrypoint.sh": "#!/bin/sh\necho hi\n",
            "app/main.py": "print('hi')\n",
            "app/static/logo.svg": b"<svg/>",
        },
        executable=["entrypoint.sh"],
        symlinks={"app/current": "main.py"},
        when=WHEN,
    )
    url = git_server.url(repo_name)
    cache.resolve(url, ref="main")

    data = cache.tree_tar(url, sha)
    members = _tar_members(data)

    assert set(members) == {
        "Dockerfile",
        "entrypoint.sh",
        "app",
        "app/main.py",
        "app/current",
        "app/static",
        "app/static/logo.svg",
    }
    assert members["app"].isdir() and stat.S_IMODE(members["app"].mode) == 0o755
    assert members["Dockerfile"].isfile() and stat.S_IMODE(members["Dockerfile"].mode) == 0o644
    assert stat.S_IMODE(members["entrypoint.sh"].mode) == 0o755
    assert members["app/current"].issym() and members["app/current"].linkname == "main.py"
    assert {m.mtime for m in members.values()} == {int(WHEN.timestamp())}
    assert _tar_read(data, "app/static/logo.svg") == b"<svg/>"
    assert _tar_read(data, "entrypoint.sh") == b"#!/bin/sh\necho hi\n"
    # deterministic: same commit, same bytes (docker layer caching depends on it)
    assert cache.tree_tar(url, sha) == data

    sub = _tar_members(cache.tree_tar(url, sha, "app/"))
    assert set(sub) == {"main.py", "current", "static", "static/logo.svg"}
    assert _tar_read(cache.tree_tar(url, sha, "./app/static"), "logo.svg") == b"<svg/>"

    with pytest.raises(GitError, match="not found"):
        cache.tree_tar(url, sha, "nope")
    with pytest.raises(GitError, match="not a directory"):
        cache.tree_tar(url, sha, "Dockerfile")


def test_tree_tar_skips_submodules(
    git_server: GitServer, repo_name: str, cache: MirrorCache
) -> None:
    repo = git_server.repo(repo_name)
    builder = repo.TreeBuilder()
    builder.insert("README", repo.create_blob(b"r"), pygit2.enums.FileMode.BLOB)
    builder.insert("vendor", "1" * 40, pygit2.enums.FileMode.COMMIT)  # a gitlink
    sig = pygit2.Signature("x", "x@example.com")
    sha = str(repo.create_commit("refs/heads/main", sig, sig, "sub", builder.write(), []))
    url = git_server.url(repo_name)

    assert set(_tar_members(cache.tree_tar(url, sha))) == {"README"}
    assert cache.read_file(url, sha, "vendor") is None


# -- helpers --------------------------------------------------------------------


def test_redact_url() -> None:
    assert redact_url("https://x-access-token:tok@github.com/a/b.git") == (
        "https://***@github.com/a/b.git"
    )
    assert redact_url("https://tok@github.com:8443/a/b") == "https://***@github.com:8443/a/b"
    assert redact_url("ssh://git:pw@host/a.git") == "ssh://git:***@host/a.git"
    assert redact_url("ssh://git@host/a.git") == "ssh://git@host/a.git"
    assert redact_url("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert redact_url("/srv/git/a.git") == "/srv/git/a.git"


def test_https_token_credentials() -> None:
    callbacks = CredentialCallbacks(GitCredentials(token="tok"))
    cred = callbacks.credentials("https://h/r", None, CredentialType.USERPASS_PLAINTEXT)

    assert isinstance(cred, pygit2.UserPass)
    assert cred.credential_tuple == ("x-access-token", "tok")
    # libgit2 asks again only when the credential was rejected: stop instead of looping
    with pytest.raises(GitError, match="authentication failed"):
        callbacks.credentials("https://h/r", None, CredentialType.USERPASS_PLAINTEXT)

    user_pass = CredentialCallbacks(GitCredentials(token="bob:pw")).credentials(
        "https://h/r", None, CredentialType.USERPASS_PLAINTEXT
    )
    assert isinstance(user_pass, pygit2.UserPass)
    assert user_pass.credential_tuple == ("bob", "pw")


def test_ssh_key_credentials_use_url_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    key = str(tmp_path / "id_ed25519")
    callbacks = CredentialCallbacks(GitCredentials(ssh_key_path=key, ssh_passphrase="pp"))
    allowed = CredentialType.SSH_KEY | CredentialType.USERPASS_PLAINTEXT

    cred = callbacks.credentials("ssh://deploy@h/r.git", "deploy", allowed)

    assert isinstance(cred, pygit2.Keypair)
    assert cred.credential_tuple == ("deploy", None, key, "pp")
    with pytest.raises(GitError, match="no usable credentials"):
        CredentialCallbacks(None).credentials("ssh://h/r", None, CredentialType.SSH_KEY)


def test_private_repository_over_https_with_a_token(tmp_path: Path) -> None:
    """A real smart-HTTP server that refuses anonymous fetches; the configured token opens it."""
    from tests.gitserver import GitHttpServer

    repos = GitServer(tmp_path / "repos")  # used only to build the bare repository
    repos.create_repo("private")
    sha = repos.commit("private", {"README": "secret\n"}, tag="v1")
    http = GitHttpServer(tmp_path / "repos", "x-access-token", "s3cr3t")
    http.start()
    try:
        anonymous = MirrorCache(tmp_path / "anon")
        with pytest.raises(GitError) as refused:
            anonymous.resolve(http.url("private"), ref="main")
        assert "s3cr3t" not in refused.value.message

        wrong = MirrorCache(tmp_path / "wrong", GitCredentials(token="nope"))
        with pytest.raises(GitError):
            wrong.resolve(http.url("private"), ref="main")

        cache = MirrorCache(tmp_path / "ok", GitCredentials(token="s3cr3t"))
        resolved = cache.resolve(http.url("private"), ref="main")
        assert resolved.sha == sha and resolved.tags == ["v1"]
        assert cache.read_file(http.url("private"), sha, "README") == b"secret\n"
        assert any(authorized for _, authorized in http.requests)
        assert any(not authorized for _, authorized in http.requests)
    finally:
        http.stop()


def test_private_repository_over_ssh_with_a_key(tmp_path: Path) -> None:
    """A real sshd that only accepts the configured key."""
    from tests.gitserver import SshServer

    repos = GitServer(tmp_path / "repos")
    bare = repos.create_repo("private")
    sha = repos.commit("private", {"README": "over ssh\n"})
    sshd = SshServer(tmp_path / "sshd")
    sshd.start()
    try:
        url = sshd.url(bare)
        keyless = MirrorCache(tmp_path / "none")
        with pytest.raises(GitError):
            keyless.resolve(url, ref="main")
        cache = MirrorCache(
            tmp_path / "ok",
            GitCredentials(
                ssh_key_path=str(sshd.client_key), ssh_public_key_path=f"{sshd.client_key}.pub"
            ),
        )
        assert cache.resolve(url, ref="main").sha == sha
        assert cache.read_file(url, sha, "README") == b"over ssh\n"
    finally:
        sshd.stop()
