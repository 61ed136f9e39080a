"""A commit's tree as a tar archive: the bytes a docker build is given as its context.

Apart from `git.py` because it is one concern of its own (git's file modes and symlinks
mapped onto tar entries), and pure: it reads objects, it never fetches.
"""

from __future__ import annotations

import io
import tarfile

import pygit2
from pygit2.enums import FileMode

_TAR_MODE_DIR = 0o755
_TAR_MODE_EXEC = 0o755
_TAR_MODE_FILE = 0o644


def tree_archive(repo: pygit2.Repository, tree: pygit2.Tree, mtime: int) -> bytes:
    """Uncompressed PAX tar of `tree`, every entry owned by root and dated `mtime`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_tree(repo, tar, tree, "", mtime)
    return buf.getvalue()


def _add_tree(
    repo: pygit2.Repository, tar: tarfile.TarFile, tree: pygit2.Tree, prefix: str, mtime: int
) -> None:
    for entry in tree:
        raw_name = entry.raw_name or b""
        name = prefix + raw_name.decode("utf-8", "surrogateescape")
        info = tarfile.TarInfo(name)
        info.mtime = mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        mode = entry.filemode
        if mode == FileMode.TREE:
            info.type = tarfile.DIRTYPE
            info.mode = _TAR_MODE_DIR
            tar.addfile(info)
            _add_tree(repo, tar, repo[entry.id].peel(pygit2.Tree), name + "/", mtime)
        elif mode == FileMode.LINK:
            blob = repo[entry.id].peel(pygit2.Blob)
            info.type = tarfile.SYMTYPE
            info.linkname = blob.data.decode("utf-8", "surrogateescape")
            info.mode = 0o777
            tar.addfile(info)
        elif mode in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
            data = repo[entry.id].peel(pygit2.Blob).data
            info.type = tarfile.REGTYPE
            info.mode = _TAR_MODE_EXEC if mode == FileMode.BLOB_EXECUTABLE else _TAR_MODE_FILE
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        # FileMode.COMMIT (submodule): not part of this repository's content; skipped.
