"""What a session changed, and its pull request, as objects (the hub's ``changes`` and
``artifacts`` answers).

Parsing keeps going on unknown fields and on missing optional ones, so a newer hub can add to its
answers without breaking an older kernel. Everything shown comes from the server (and, through
it, from files the agent wrote), so the HTML reprs escape every value and run the result through
the chat's sanitizer as a second layer.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Changes", "FileChange", "GitRef", "NotebookCellChange", "PullRequest"]

# The notebook shows at most this much of one file's diff; the rest is one click away in the chat.
_HTML_DIFF_MAX_CHARS = 200_000


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int(value: Any) -> int:
    return _opt_int(value) or 0


@dataclass(frozen=True)
class GitRef:
    """A branch (``ref``) and the commit (``sha``) it pointed at when the changes were computed."""

    ref: str
    sha: str

    @classmethod
    def from_json(cls, data: Any) -> GitRef | None:
        if not isinstance(data, dict):
            return None
        return cls(ref=_str(data.get("ref")), sha=_str(data.get("sha")))


@dataclass(frozen=True)
class NotebookCellChange:
    """One changed cell of a notebook: its source as a unified diff, its outputs in words."""

    index: int | None
    cell_type: str
    status: str  # added | deleted | modified
    source_diff: str
    outputs: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NotebookCellChange:
        return cls(
            index=_opt_int(data.get("index")),
            cell_type=_str(data.get("cell_type")),
            status=_str(data.get("status")),
            source_diff=_str(data.get("source_diff")),
            outputs=_str(data.get("outputs")),
        )


@dataclass(frozen=True)
class FileChange:
    """One changed file. ``additions``/``deletions`` are None for binary files; ``diff`` is a
    unified diff (for notebooks a readable cell-wise text), cut when ``diff_truncated``."""

    path: str
    status: str  # added | modified | deleted | renamed | copied | type_changed
    old_path: str | None = None
    additions: int | None = None
    deletions: int | None = None
    binary: bool = False
    notebook: bool = False
    diff: str = ""
    diff_truncated: bool = False
    cells: list[NotebookCellChange] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileChange:
        cells = data.get("cells")
        return cls(
            path=_str(data.get("path")),
            status=_str(data.get("status"), "modified"),
            old_path=_opt_str(data.get("old_path")),
            additions=_opt_int(data.get("additions")),
            deletions=_opt_int(data.get("deletions")),
            binary=bool(data.get("binary")),
            notebook=bool(data.get("notebook")),
            diff=_str(data.get("diff")),
            diff_truncated=bool(data.get("diff_truncated")),
            cells=[NotebookCellChange.from_json(c) for c in cells if isinstance(c, dict)]
            if isinstance(cells, list)
            else None,
        )

    @property
    def name(self) -> str:
        """``path``, or ``old_path → path`` for a rename or copy."""
        return f"{self.old_path} → {self.path}" if self.old_path and self.old_path != self.path else self.path

    def stat(self) -> str:
        """``+a −d``, or ``binary``."""
        if self.binary or self.additions is None:
            return "binary"
        return f"+{self.additions} −{self.deletions or 0}"

    def _repr_markdown_(self) -> str:
        return _file_markdown(self)

    def _repr_html_(self) -> str:
        return _sanitized(_file_html(self))


@dataclass(frozen=True)
class Changes:
    """A session's changes (base branch to session branch), or one prompt's (``prompt_id``).
    ``truncated`` means the hub listed only some of the files; ``totals`` still counts them all."""

    session_id: str
    prompt_id: str | None
    base: GitRef | None
    head: GitRef | None
    files: list[FileChange]
    total_files: int
    additions: int
    deletions: int
    truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Changes:
        files = [FileChange.from_json(f) for f in data.get("files") or [] if isinstance(f, dict)]
        totals = data.get("totals") if isinstance(data.get("totals"), dict) else {}
        known = {"session_id", "prompt_id", "base", "head", "files", "totals", "truncated"}
        return cls(
            session_id=_str(data.get("session_id")),
            prompt_id=_opt_str(data.get("prompt_id")),
            base=GitRef.from_json(data.get("base")),
            head=GitRef.from_json(data.get("head")),
            files=files,
            total_files=_opt_int(totals.get("files")) if _opt_int(totals.get("files")) is not None else len(files),
            additions=_int(totals.get("additions")),
            deletions=_int(totals.get("deletions")),
            truncated=bool(data.get("truncated")),
            extra={k: v for k, v in data.items() if k not in known},
        )

    @property
    def totals(self) -> dict[str, int]:
        """``{files, additions, deletions}`` as the hub counted them."""
        return {"files": self.total_files, "additions": self.additions, "deletions": self.deletions}

    def summary(self) -> str:
        """``N files changed +a −d``."""
        noun = "file" if self.total_files == 1 else "files"
        return f"{self.total_files} {noun} changed +{self.additions} −{self.deletions}"

    def only(self, *paths: str) -> Changes:
        """The same changes limited to files at or under ``paths`` (old or new name); the totals
        are recounted from the files kept."""
        wanted = [p.rstrip("/") for p in paths if p.strip("/")]
        if not wanted:
            return self

        def keep(f: FileChange) -> bool:
            names = [n for n in (f.path, f.old_path) if n]
            return any(n == w or n.startswith(w + "/") for n in names for w in wanted)

        files = [f for f in self.files if keep(f)]
        return Changes(
            session_id=self.session_id, prompt_id=self.prompt_id, base=self.base, head=self.head, files=files,
            total_files=len(files), additions=sum(f.additions or 0 for f in files),
            deletions=sum(f.deletions or 0 for f in files), truncated=self.truncated, extra=self.extra,
        )  # fmt: skip

    def __iter__(self) -> Iterator[FileChange]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, path: str) -> FileChange:
        """The file at ``path`` (its new name, or its old one for a rename)."""
        for f in self.files:
            if path in (f.path, f.old_path):
                return f
        raise KeyError(path)

    def _range(self) -> str:
        if self.base is None and self.head is None:
            return ""
        base = f"{self.base.ref}@{self.base.sha[:8]}" if self.base else "?"
        head = f"{self.head.ref}@{self.head.sha[:8]}" if self.head else "?"
        return f"{base} → {head}"

    def _repr_markdown_(self) -> str:
        lines = [f"**{_md_text(self.summary())}**"]
        if self._range():
            lines[0] += f" ({_md_text(self._range())})"
        if self.truncated:
            lines.append(f"\n_Only {len(self.files)} of {self.total_files} files are listed._")
        parts = ["\n".join(lines)] + [_file_markdown(f) for f in self.files]
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        title = html.escape(self.summary())
        if self._range():
            title += f" <span>({html.escape(self._range())})</span>"
        body = [f"<div><p><strong>{title}</strong></p>"]
        if self.truncated:
            body.append(f"<p><em>Only {len(self.files)} of {self.total_files} files are listed.</em></p>")
        body += [_file_html(f) for f in self.files]
        body.append("</div>")
        return _sanitized("".join(body))

    def __repr__(self) -> str:
        return f"<cloudws.Changes {self.summary()}{' (truncated)' if self.truncated else ''}>"


@dataclass(frozen=True)
class PullRequest:
    """A pull request the hub opened (or found) for a session's branch."""

    number: int
    url: str
    state: str  # open | draft | merged | closed
    title: str
    base: str
    head: str
    id: str | None = None
    created: bool | None = None  # from create_pull_request: False when the branch already had one
    created_at: float | str | None = None
    updated_at: float | str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], created: bool | None = None) -> PullRequest:
        def ref(value: Any) -> str:  # a plain branch name, or GitHub's {"ref": ...}
            return _str(value.get("ref")) if isinstance(value, dict) else _str(value)

        return cls(
            number=_int(data.get("number")),
            url=_str(data.get("url")),
            state=_str(data.get("state")),
            title=_str(data.get("title")),
            base=ref(data.get("base")),
            head=ref(data.get("head")),
            id=_opt_str(data.get("id")),
            created=created,
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
        )

    def _repr_markdown_(self) -> str:
        return f"Pull request [#{self.number}]({_md_url(self.url)}) ({_md_text(self.state)}): {_md_text(self.title)}"

    def _repr_html_(self) -> str:
        return _sanitized(
            f'<p>Pull request <a href="{html.escape(self.url)}">#{self.number}</a> '
            f"({html.escape(self.state)}): {html.escape(self.title)}</p>"
        )

    def __str__(self) -> str:
        return f"#{self.number} ({self.state}) {self.title}: {self.url}"


# --- rendering ----------------------------------------------------------------------------------


def _md_text(text: str) -> str:
    """Text for markdown: no markup, no raw HTML (escaped, and markdown's punctuation too)."""
    escaped = html.escape(text, quote=False)
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|~>" else c for c in escaped)


def _md_url(url: str) -> str:
    """Only http(s) links; anything else becomes an inert fragment link."""
    if not url.lower().startswith(("http://", "https://")):
        return "#"
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


def _fence(text: str) -> str:
    """A fence longer than any backtick run in ``text``, so the text cannot close it."""
    longest, run = 0, 0
    for c in text:
        run = run + 1 if c == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _file_heading(f: FileChange) -> str:
    return f"{f.name} ({f.status}, {f.stat()})"


def _file_markdown(f: FileChange) -> str:
    lines = [f"**{_md_text(_file_heading(f))}**"]
    if f.cells:
        for cell in f.cells:
            where = f"cell {cell.index}" if cell.index is not None else "cell"
            lines.append(f"\n_{_md_text(f'{where} ({cell.cell_type}, {cell.status})')}_")
            if cell.source_diff:
                fence = _fence(cell.source_diff)
                lines.append(f"{fence}diff\n{cell.source_diff.rstrip(chr(10))}\n{fence}")
            if cell.outputs:
                lines.append(f"outputs: {_md_text(cell.outputs)}")
    elif f.diff:
        fence = _fence(f.diff)
        lines.append(f"{fence}diff\n{f.diff.rstrip(chr(10))}\n{fence}")
    elif f.binary:
        lines.append("_binary file, no diff_")
    if f.diff_truncated:
        lines.append("_The diff is too large and was cut._")
    return "\n".join(lines)


def _file_html(f: FileChange) -> str:
    parts = [f"<details><summary><code>{html.escape(_file_heading(f))}</code></summary>"]
    if f.cells:
        for cell in f.cells:
            where = f"cell {cell.index}" if cell.index is not None else "cell"
            parts.append(f"<p><em>{html.escape(f'{where} ({cell.cell_type}, {cell.status})')}</em></p>")
            if cell.source_diff:
                parts.append(_highlight_diff(cell.source_diff))
            if cell.outputs:
                parts.append(f"<p>outputs: {html.escape(cell.outputs)}</p>")
    elif f.diff:
        parts.append(_highlight_diff(f.diff))
    elif f.binary:
        parts.append("<p><em>binary file, no diff</em></p>")
    if f.diff_truncated:
        parts.append("<p><em>The diff is too large and was cut.</em></p>")
    parts.append("</details>")
    return "".join(parts)


def _highlight_diff(diff: str) -> str:
    """Pygments' ``diff`` lexer, whose HtmlFormatter escapes the text it wraps."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import DiffLexer

    shown = diff if len(diff) <= _HTML_DIFF_MAX_CHARS else diff[:_HTML_DIFF_MAX_CHARS] + "\n…\n"
    # Inline styles would be dropped by the sanitizer; the classes match the chat's stylesheet.
    return highlight(shown, DiffLexer(), HtmlFormatter(cssclass="highlight"))


def _sanitized(fragment: str) -> str:
    """The chat's allow-list sanitizer (extended with details/summary) over the fragment, inside
    the chat's scope class, after the chat's own highlight stylesheet: a notebook has none for
    Pygments' classes, and the sanitizer rightly drops inline styles."""
    from ..widget.markdown import PYGMENTS_CSS

    return f'<style>{PYGMENTS_CSS}</style><div class="cloudws-md">{_repr_cleaner().clean(fragment)}</div>'


_cleaner: Any = None


def _repr_cleaner() -> Any:
    """Built on first use: importing the client must not import the widget's renderer."""
    global _cleaner
    if _cleaner is None:
        import nh3

        from ..widget import markdown

        tags = set(markdown._TAGS) | {"details", "summary"}
        _cleaner = nh3.Cleaner(
            tags=tags,
            clean_content_tags={"script", "style"},
            attributes={"a": {"href"}},
            set_tag_attribute_values={"a": {"target": "_blank"}},
            allowed_classes={**markdown._CLASSES, "div": {"highlight", "cloudws-md"}},
            url_schemes={"http", "https"},
            url_relative="deny",
            link_rel="noopener noreferrer",
            strip_comments=True,
        )
    return _cleaner
