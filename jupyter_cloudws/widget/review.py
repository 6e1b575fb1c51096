"""The review in the chat: "N files changed +a −d", a file's highlighted diff, the pull request badge.
Pure: no widgets, no I/O.

Everything here comes from the server, and through it from files the agent wrote: a path, a diff
line or a PR title may hold markup meant to run in the page. Paths, titles and states reach the
front end as plain strings, which it only ever sets as text. Diffs become HTML here, the one way
markdown.py makes code HTML: Pygments' ``diff`` lexer (its formatter escapes every character it
wraps), then the same nh3 allow-list as rendered markdown, so nothing but ``div.highlight``,
``pre`` and Pygments' token ``span``s can come out.

The client hands the server's answers over as objects (``jupyter_cloudws.client.review``) or, from
an older client or a test, as the REST dicts; both read the same through :func:`_get`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pygments import highlight
from pygments.lexers import DiffLexer

from .markdown import _FORMATTER, sanitize_html

__all__ = [
    "MAX_DIFF_CHARS", "PR_STATES", "changes_summary", "file_view", "files_summary", "pull_request_badge",
    "render_diff",
]  # fmt: skip

# The server bounds each diff already; this bounds what one click sends to the page and what
# Pygments is asked to lex on the kernel's side, whatever the server sends.
MAX_DIFF_CHARS = 400_000
MAX_LISTED_FILES = 300  # as many as a git event lists
PR_STATES = ("open", "draft", "merged", "closed")
FILE_STATUSES = ("added", "modified", "deleted", "renamed", "copied", "type_changed")
_LEXER = DiffLexer()


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a REST dict or of the client's dataclass alike."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _count(value: Any) -> int | None:
    """A non-negative int, or None (binary files have no line counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def render_diff(diff: str) -> str:
    """A unified diff as highlighted, sanitized HTML (``<div class="highlight"><pre>…``)."""
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + "\n"
    return sanitize_html(highlight(diff, _LEXER, _FORMATTER))


def files_summary(files: int, additions: int, deletions: int) -> str:
    """``3 files changed +10 −2``."""
    return f"{files} {'file' if files == 1 else 'files'} changed +{additions} −{deletions}"


def listed_file(entry: Any) -> dict[str, Any] | None:
    """One file of a git event's ``files`` (path, status, line counts), checked; None when it
    has no path to show."""
    path = _text(_get(entry, "path"))
    if not path:
        return None
    status = _text(_get(entry, "status"))
    return {
        "path": path,
        "status": status if status in FILE_STATUSES else "modified",
        "additions": _count(_get(entry, "additions")),
        "deletions": _count(_get(entry, "deletions")),
    }


def git_files(event: Mapping[str, Any]) -> dict[str, Any]:
    """What a git event says its prompt changed: ``files`` (checked, at most ``MAX_LISTED_FILES``),
    ``files_total`` (the event's count, never fewer than listed) and the line sums of the files
    listed. An event without ``files`` (an older hub) gives None for all: the chat then shows only
    the commit line."""
    raw = event.get("files")
    if not isinstance(raw, list):
        return {"files": None, "files_total": None, "additions": None, "deletions": None}
    files = [f for f in (listed_file(e) for e in raw[:MAX_LISTED_FILES]) if f is not None]
    total = _count(event.get("files_total"))
    return {
        "files": files,
        "files_total": max(total if total is not None else 0, len(files)),
        "additions": sum(f["additions"] or 0 for f in files),
        "deletions": sum(f["deletions"] or 0 for f in files),
    }


def changes_summary(changes: Any) -> dict[str, Any]:
    """The session's totals and its file list (no diffs) from ``session.changes()``."""
    totals = _get(changes, "totals")
    files_raw = _get(changes, "files") or []
    files = [f for f in (listed_file(e) for e in files_raw) if f is not None]
    if isinstance(totals, Mapping):
        n, add, dele = totals.get("files"), totals.get("additions"), totals.get("deletions")
    else:  # the client's Changes object
        n, add, dele = _get(changes, "total_files"), _get(changes, "additions"), _get(changes, "deletions")
    n = _count(n)
    return {
        "files": files,
        "files_total": max(n if n is not None else 0, len(files)),
        "additions": _count(add) or 0,
        "deletions": _count(dele) or 0,
        "truncated": bool(_get(changes, "truncated")),
    }


def find_file(changes: Any, path: str) -> Any | None:
    """The file of ``changes`` at ``path`` (its new name, or its old one for a rename)."""
    files: Iterable[Any] = _get(changes, "files") or []
    for f in files:
        if path in (_get(f, "path"), _get(f, "old_path")):
            return f
    return None


def file_view(f: Any) -> dict[str, Any]:
    """One file of a ``changes`` answer as the chat draws it: its name and counts as text, its diff
    (or, for a notebook, each changed cell's source diff) as highlighted HTML, the outputs of a cell
    in words. A notebook never shows as JSON: without ``cells`` it shows the server's cell-wise
    ``diff`` text."""
    view = listed_file(f) or {"path": "", "status": "modified", "additions": None, "deletions": None}
    old_path = _text(_get(f, "old_path"))
    diff = _text(_get(f, "diff"))
    cells_raw = _get(f, "cells")
    cells = None
    if isinstance(cells_raw, list):
        cells = []
        for c in cells_raw:
            if not isinstance(c, (str, bytes, int, float, list)) and c is not None:
                index = _count(_get(c, "index"))
                source_diff = _text(_get(c, "source_diff"))
                cells.append({
                    "index": index, "cell_type": _text(_get(c, "cell_type")) or "cell",
                    "status": _text(_get(c, "status")) or "modified", "outputs": _text(_get(c, "outputs")),
                    "html": render_diff(source_diff) if source_diff else "",
                })  # fmt: skip
    view.update(
        old_path=old_path or None,
        binary=bool(_get(f, "binary")),
        notebook=bool(_get(f, "notebook")),
        # Cut by the server, or here: either way the chat says so under what it shows.
        truncated=bool(_get(f, "diff_truncated")) or len(diff) > MAX_DIFF_CHARS,
        cells=cells,
        html="" if cells or not diff else render_diff(diff),
    )
    return view


def pull_request_badge(pr: Any) -> dict[str, Any] | None:
    """``{number, state, title, url}`` for the header, from a ``pull_request`` event or artifact;
    None when it names no pull request. ``url`` is kept only when it is http(s): it becomes a
    link's ``href``, where ``javascript:`` would run."""
    number = _count(_get(pr, "number"))
    if not number:
        return None
    state = _text(_get(pr, "state"))
    url = _text(_get(pr, "url")).strip()
    return {
        "number": number,
        "state": state if state in PR_STATES else "open",
        "title": _text(_get(pr, "title")),
        "url": url if url.lower().startswith(("https://", "http://")) else "",
    }


def pr_draft(draft: Any) -> dict[str, str]:
    """``{title, body}`` of ``session.pull_request_draft()`` as text for the form's fields."""
    return {"title": _text(_get(draft, "title")), "body": _text(_get(draft, "body"))}
