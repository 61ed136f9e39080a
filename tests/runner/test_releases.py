"""Which branch a deployed commit came from, read from a real mirror of a real repository."""

from __future__ import annotations

from pathlib import Path

from deploybot.runner.git import MirrorCache
from deploybot.runner.releases import deployed_branch
from tests.gitserver import GitServer


def test_the_branch_of_a_deployed_commit(git_server: GitServer, tmp_path: Path) -> None:
    git_server.create_repo("rl-branches")
    on_main = git_server.commit("rl-branches", {"a": "1"}, tag="v1.0.0")
    on_feature = git_server.commit(
        "rl-branches", {"a": "2"}, branch="feature/x", parent_from="main"
    )
    later_main = git_server.commit("rl-branches", {"a": "3"})
    url = git_server.url("rl-branches")
    mirrors = MirrorCache(tmp_path / "git")
    assert deployed_branch(mirrors, url, on_main, "main") is None  # no mirror yet
    mirrors.fetch(url)

    assert deployed_branch(mirrors, url, on_feature, "feature/x") == "feature/x"
    assert deployed_branch(mirrors, url, on_feature, "refs/heads/feature/x") == "feature/x"
    # A tag or a bare sha: the default branch when it has the commit, else a branch that does.
    assert deployed_branch(mirrors, url, on_main, "v1.0.0") == "main"
    assert deployed_branch(mirrors, url, on_main, None) == "main"
    assert deployed_branch(mirrors, url, later_main, None) == "main"
    assert deployed_branch(mirrors, url, on_feature, None) == "feature/x"
