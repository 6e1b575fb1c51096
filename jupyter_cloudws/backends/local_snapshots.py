"""Snapshots of local sandboxes: copies of what a sandbox made of its folder, kept beside the
sandboxes in the data directory (which no sandbox sees).

A snapshot holds ``repo`` (the work tree, with its ``.git``: the branch and every file, those git
ignores too), ``home``, and ``claude`` (the conversation, when no data directory keeps it for the
session). Not the event log, the config or the sockets: a restored sandbox starts a fresh log.

The agent controls these trees, so nothing here follows a symbolic link out of them: links are
copied as links, a part that is itself a link is skipped, and special files (fifos, sockets,
devices) are never opened for reading.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

from .base import SnapshotGone

SNAPSHOT_PARTS = ("repo", "home", "claude")  # of a sandbox's box/
_SNAPSHOT_ID = re.compile(r"snap-[0-9a-f]{32}")
PARTIAL_PREFIX = ".partial-"  # a snapshot being written; renamed into place once complete
CP_ERROR_CHARS = 500


def new_snapshot_id() -> str:
    return f"snap-{uuid.uuid4().hex}"


def snapshot_path(snapshots_dir: Path, snapshot_id: str) -> Path:
    """Where ``snapshot_id`` lives; an id that is not one of ours (another backend's, a path
    trick) is a snapshot this backend does not have."""
    if not isinstance(snapshot_id, str) or not _SNAPSHOT_ID.fullmatch(snapshot_id):
        raise SnapshotGone(f"not a local snapshot id: {snapshot_id!r}")
    return snapshots_dir / snapshot_id


def take(box: Path, target: Path, parts: tuple[str, ...] = SNAPSHOT_PARTS) -> None:
    """Copy ``parts`` of ``box`` into the new snapshot folder ``target``, all or nothing."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = target.parent / f"{PARTIAL_PREFIX}{target.name}"
    partial.mkdir(mode=0o700)
    try:
        copy_parts(box, partial, parts)
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def copy_parts(source: Path, target: Path, parts: tuple[str, ...]) -> None:
    """Copy each of ``parts`` that is a real directory in ``source`` into ``target``."""
    for part in parts:
        try:
            info = (source / part).lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode):  # lstat: a part the agent swapped for a link is not followed
            copy_tree(source / part, target / part)


def copy_tree(source: Path, target: Path, *, use_cp: bool | None = None) -> None:
    """Copy the directory ``source`` to ``target`` (which must not exist), links as links.

    GNU ``cp -a --reflink=auto`` where there is one (Linux): it shares blocks on filesystems
    that can, and recreates special files instead of reading them. Else a copy in Python that
    copies regular files only.
    """
    if use_cp is None:
        use_cp = sys.platform.startswith("linux") and shutil.which("cp") is not None
    if use_cp:
        done = subprocess.run(
            ["cp", "-a", "--reflink=auto", "--", str(source), str(target)], stdin=subprocess.DEVNULL,
            capture_output=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise OSError(f"copying {source.name} failed: {done.stderr.decode(errors='replace')[-CP_ERROR_CHARS:]}")
        return
    shutil.copytree(source, target, symlinks=True, copy_function=_copy_regular_file)


def _copy_regular_file(source: str, target: str) -> None:
    # A fifo would block the read for ever, a device would read the host's: copy only files.
    if stat.S_ISREG(os.lstat(source).st_mode):
        shutil.copy2(source, target, follow_symlinks=False)


def restore(snapshot: Path, box: Path, parts: tuple[str, ...]) -> None:
    """Copy ``parts`` of a snapshot into a new sandbox's (empty) ``box``."""
    if not snapshot.is_dir():
        raise SnapshotGone(f"snapshot {snapshot.name} is gone")
    copy_parts(snapshot, box, parts)


def delete(snapshot: Path) -> None:
    shutil.rmtree(snapshot, ignore_errors=True)
