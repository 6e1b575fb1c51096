"""A session's changes, or one prompt's: the changed files with their unified diffs, bounded.

The whole answer costs a fixed handful of git processes however many files changed: one
``git diff --raw --numstat -z`` lists them, one ``git diff`` streams every patch (split per file
as it is read, each kept up to a limit), and notebooks' two versions come from one
``git cat-file --batch``. A patch beyond its file's limit, or past the answer's budget, is cut
and marked (``diff_truncated``); files beyond ``max_files`` are counted, not listed
(``truncated``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cloudws_sandbox.gitops import SAFE_DIFF_OPTIONS, FileChange, parse_raw_numstat

from .mirror import LOCAL_ENV, GitFailed, run_git
from .notebook_diff import MAX_NOTEBOOK_BYTES, MatchBudget, NotANotebook, diff_notebook

SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_NO_BLOB = re.compile(r"0+")
_HEADER = b"\ndiff --git "
_READ_BYTES = 256 * 1024
PATCH_TIMEOUT_S = 60.0  # the patches' git diff; what it wrote by then is shown, the rest marked cut


@dataclass(frozen=True)
class DiffLimits:
    max_files: int = 3000  # files listed; the rest are counted in totals
    max_file_diff_bytes: int = 256 * 1024  # one file's patch; cut at a line, diff_truncated set
    max_total_diff_bytes: int = 8 * 1024 * 1024  # all patches of one answer together
    max_read_bytes: int = 64 * 1024 * 1024  # git's patch output read at most (one huge file must not stall)
    max_notebooks: int = 50  # diffed cell by cell; others show their text diff
    notebook_match: MatchBudget = MatchBudget()  # what nbdime is given, per notebook and per answer


async def empty_tree(git_dir: Path) -> str:
    return (await run_git(git_dir, "hash-object", "-t", "tree", "--stdin", input_bytes=b"")).decode().strip()


async def merge_base(git_dir: Path, a: str, b: str) -> str | None:
    out = await run_git(git_dir, "merge-base", a, b, "--", check=False)
    sha = out.decode(errors="replace").strip()
    return sha if SHA.fullmatch(sha) else None


async def compute_changes(git_dir: Path, base: str | None, head: str, limits: DiffLimits = DiffLimits()) -> dict[str, Any]:
    """The files changed from commit ``base`` (None: from nothing) to commit ``head`` in the
    repository at ``git_dir``: ``{"files": [...], "totals": {...}, "truncated": bool}``."""
    old = base or await empty_tree(git_dir)
    raw = await run_git(git_dir, "diff", "--raw", "--numstat", "-z", "--no-abbrev", *SAFE_DIFF_OPTIONS, old, head, "--")
    changes = parse_raw_numstat(raw)
    listed = changes[: limits.max_files]
    # A type change (a file became a symlink) is two patches: the old one deleted, the new added.
    wanted_chunks = sum(2 if c.status == "type_changed" else 1 for c in listed)
    chunks, cut = await _patches(git_dir, old, head, wanted_chunks, limits)
    files: list[dict[str, Any]] = []
    position = 0
    for change in listed:
        count = 2 if change.status == "type_changed" else 1
        mine = chunks[position : position + count]
        position += count
        text = "".join(chunk.text for chunk in mine)
        diff_truncated = len(mine) < count or any(chunk.cut for chunk in mine)
        files.append(_file_entry(change, text, diff_truncated))
    await _notebooks(git_dir, listed, files, limits)
    return {
        "files": files,
        "totals": {
            "files": len(changes),
            "additions": sum(c.additions or 0 for c in changes),
            "deletions": sum(c.deletions or 0 for c in changes),
        },
        "truncated": len(changes) > len(listed) or cut or any(f["diff_truncated"] for f in files),
    }


def _file_entry(change: FileChange, diff: str, diff_truncated: bool) -> dict[str, Any]:
    return {
        "path": change.path, "old_path": change.old_path, "status": change.status,
        "additions": change.additions, "deletions": change.deletions, "binary": change.binary,
        "notebook": False, "diff": diff, "diff_truncated": diff_truncated, "cells": None, "note": None,
    }  # fmt: skip


@dataclass
class _Chunk:
    data: bytearray
    cut: bool = False

    @property
    def text(self) -> str:
        data = bytes(self.data)
        if self.cut:  # end at a whole line: a half line would highlight as garbage
            data = data[: data.rfind(b"\n") + 1]
        return data.decode("utf-8", errors="replace")


async def _patches(git_dir: Path, old: str, head: str, wanted: int, limits: DiffLimits) -> tuple[list[_Chunk], bool]:
    """Every file's patch from one ``git diff``, split at its ``diff --git`` lines as it streams
    in, each kept up to the per-file limit while the total budget lasts. Returns the patches (at
    most ``wanted``) and whether git's output was cut short (the rest then has no patch)."""
    if wanted == 0:
        return [], False
    proc = await asyncio.create_subprocess_exec(
        "git", "diff", "--patch", *SAFE_DIFF_OPTIONS, old, head, "--",
        env={**os.environ, **LOCAL_ENV, "GIT_DIR": str(git_dir)}, cwd=str(git_dir),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        limit=_READ_BYTES,
    )  # fmt: skip
    chunks: list[_Chunk] = []
    kept_bytes = read_bytes = 0

    def feed(piece: bytes) -> None:
        nonlocal kept_bytes
        if not chunks or not piece:
            return
        chunk = chunks[-1]
        room = min(limits.max_file_diff_bytes - len(chunk.data), limits.max_total_diff_bytes - kept_bytes)
        if len(piece) > room:
            chunk.cut = True
            piece = piece[: max(room, 0)]
        chunk.data += piece
        kept_bytes += len(piece)

    async def pump() -> bool:
        """Read git's output to its end, or until nothing more is wanted or kept; True when cut short."""
        nonlocal read_bytes
        tail = b"\n"  # the output's first line is a header too
        while block := await proc.stdout.read(_READ_BYTES):  # type: ignore[union-attr]
            read_bytes += len(block)
            data = tail + block
            start = 0
            while (at := data.find(_HEADER, start)) != -1:
                feed(data[start : at + 1])
                if len(chunks) == wanted:  # every listed file has its patch: the rest is not needed
                    return True
                chunks.append(_Chunk(bytearray()))
                start = at + 1
            keep = max(start, len(data) - len(_HEADER) + 1)  # a header may straddle two reads
            feed(data[start:keep])
            tail = data[keep:]
            if read_bytes > limits.max_read_bytes or kept_bytes >= limits.max_total_diff_bytes:
                if chunks:
                    chunks[-1].cut = True
                return True
        feed(tail)
        return False

    try:
        # One timeout for the whole read, not one per read: a wait_for per block costs a task each.
        cut = await asyncio.wait_for(pump(), PATCH_TIMEOUT_S)
    except asyncio.TimeoutError:
        cut = True
        if chunks:
            chunks[-1].cut = True
    finally:
        if proc.returncode is None:
            # os.kill, not proc.kill(): Popen.kill() polls first, reaping a git that just ended
            # behind asyncio's child watcher (which then warns of an unknown child). A zombie
            # keeps its pid until the watcher reaps it, so the signal can reach no other process.
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await proc.wait()
    if cut and len(chunks) == wanted and not chunks[-1].cut:
        cut = False  # stopped only because nothing more was wanted
    return chunks, cut


async def _notebooks(git_dir: Path, listed: list[FileChange], files: list[dict[str, Any]], limits: DiffLimits) -> None:
    """Replace each notebook's text diff with its cell-wise one (both versions from one
    ``git cat-file --batch``); a notebook that cannot be read keeps its text diff, with a note."""
    picked = [(i, c) for i, c in enumerate(listed) if c.path.endswith(".ipynb") and c.status != "type_changed"]
    picked = picked[: limits.max_notebooks]
    if not picked:
        return
    blobs = sorted({b for _, c in picked for b in (c.old_blob, c.new_blob) if not _NO_BLOB.fullmatch(b)})
    sizes = await _blob_sizes(git_dir, blobs)
    small = [b for b in blobs if 0 <= sizes.get(b, -1) <= MAX_NOTEBOOK_BYTES]
    contents = await _blob_contents(git_dir, small)
    match_lines_left, difflib_lines_left = limits.notebook_match.answer_lines, limits.notebook_match.difflib_lines
    for i, change in picked:
        entry = files[i]
        entry["notebook"] = True
        sides = []
        for blob in (change.old_blob, change.new_blob):
            if _NO_BLOB.fullmatch(blob):
                sides.append(None)
            elif blob in contents:
                sides.append(contents[blob])
            else:
                sides.append(b"\0" * (MAX_NOTEBOOK_BYTES + 1))  # too large: read_notebook says so
        try:
            budget = replace(limits.notebook_match, answer_lines=match_lines_left, difflib_lines=difflib_lines_left)
            nb = await asyncio.to_thread(diff_notebook, sides[0], sides[1], budget)
        except NotANotebook as exc:
            entry["note"] = f"not diffed cell by cell: {exc}; shown as text"
            continue
        match_lines_left -= nb.matched_lines
        difflib_lines_left -= nb.difflib_lines
        entry["note"] = nb.note
        text = nb.text.encode()
        if len(text) > limits.max_file_diff_bytes:
            text = text[: text.rfind(b"\n", 0, limits.max_file_diff_bytes) + 1]
            entry["diff_truncated"] = True
        entry["diff"] = text.decode("utf-8", errors="replace")
        entry["cells"] = nb.cells


async def _blob_sizes(git_dir: Path, blobs: list[str]) -> dict[str, int]:
    if not blobs:
        return {}
    out = await run_git(git_dir, "cat-file", "--batch-check=%(objectname) %(objectsize)",
                        input_bytes="".join(b + "\n" for b in blobs).encode())  # fmt: skip
    sizes: dict[str, int] = {}
    for line in out.decode(errors="replace").splitlines():
        name, _, size = line.partition(" ")
        if size.isdigit():
            sizes[name] = int(size)
    return sizes


async def _blob_contents(git_dir: Path, blobs: list[str]) -> dict[str, bytes]:
    if not blobs:
        return {}
    out = await run_git(git_dir, "cat-file", "--batch", input_bytes="".join(b + "\n" for b in blobs).encode())
    contents: dict[str, bytes] = {}
    pos = 0
    for blob in blobs:
        end = out.index(b"\n", pos)
        header = out[pos:end].decode(errors="replace").split()
        pos = end + 1
        if len(header) != 3 or header[1] == "missing":
            continue
        size = int(header[2])
        contents[blob] = out[pos : pos + size]
        pos += size + 1  # the content, then a newline
    return contents


__all__ = ["DiffLimits", "GitFailed", "SHA", "compute_changes", "empty_tree", "merge_base"]
