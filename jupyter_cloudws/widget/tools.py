"""Pure helpers that turn Claude Code tool calls into compact chat rows: an icon, a one-line summary,
and a label for a run of consecutive calls to the same tool.

Tool inputs come straight from the model's ``tool_use`` blocks, so nothing about their shape is
guaranteed (missing keys, ``None``, numbers where strings are expected, a list instead of a dict).
Every function here degrades to something readable instead of raising: a bad row must never take the
whole chat view down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MAX_SUMMARY", "group_label", "tool_icon", "tool_summary"]

# Rows are single lines in a narrow side panel; longer text is cut with an ellipsis.
MAX_SUMMARY = 120
_ELLIPSIS = "…"
# Unknown tools: only a string this short is a plausible "what is it doing" label (not file content).
_MAX_GUESS = 200

_DEFAULT_ICON = "🔧"
_ICONS = {
    "Bash": "💻",
    "BashOutput": "💻",
    "KillShell": "💻",
    "KillBash": "💻",
    "Read": "📄",
    "NotebookRead": "📄",
    "Write": "✏️",
    "Edit": "✏️",
    "MultiEdit": "✏️",
    "NotebookEdit": "✏️",
    "Grep": "🔍",
    "Glob": "🔍",
    "LS": "🔍",
    "WebFetch": "🌐",
    "WebSearch": "🌐",
    "TodoWrite": "☑",
    "Task": "🤖",
    "Agent": "🤖",
}

_TODO_MARKS = {"pending": "☐", "completed": "☑", "in_progress": "◐"}

# (verb, singular noun, plural noun) for a run of calls: "{verb} {count} {noun}".
_GROUP_PHRASES = {
    "Read": ("Read", "file", "files"),
    "Write": ("Wrote", "file", "files"),
    "Edit": ("Edited", "file", "files"),
    "MultiEdit": ("Edited", "file", "files"),
    "Bash": ("Ran", "command", "commands"),
    "Grep": ("Searched", "pattern", "patterns"),
    "Glob": ("Listed", "pattern", "patterns"),
    "WebFetch": ("Fetched", "page", "pages"),
}


# --- text helpers ---------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """Collapse all whitespace runs (newlines, tabs) so the row stays on one line."""
    return " ".join(text.split())


def _truncate(text: str, limit: int = MAX_SUMMARY) -> str:
    """Cut from the right, keeping room for the ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + _ELLIPSIS


def _shorten_path(path: str, limit: int = MAX_SUMMARY) -> str:
    """Cut a long path from the left at a ``/`` boundary, because the file name is the useful end."""
    if len(path) <= limit:
        return path
    tail = path[-(limit - 2) :]  # room for "…/"
    cut = tail.find("/")
    if 0 <= cut < len(tail) - 1:
        tail = tail[cut + 1 :]
    return _ELLIPSIS + "/" + tail


def _str(value: Any) -> str:
    """A field as text: strings as-is, numbers stringified, anything else (None, dicts) empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _field(data: Mapping[str, Any], key: str) -> str:
    return _one_line(_str(data.get(key)))


# --- per-tool summaries -------------------------------------------------------------------------


def _bash(data: Mapping[str, Any]) -> str:
    lines = [line.strip() for line in _str(data.get("command")).splitlines() if line.strip()]
    if len(lines) <= 1:
        return _truncate(_one_line(lines[0])) if lines else ""
    # Mark the hidden lines so a heredoc or a multi-line script is not mistaken for a one-liner.
    first = _truncate(_one_line(lines[0]), MAX_SUMMARY - 2)
    return first if first.endswith(_ELLIPSIS) else first + " " + _ELLIPSIS


def _path_of(key: str) -> Callable[[Mapping[str, Any]], str]:
    def summarize(data: Mapping[str, Any]) -> str:
        return _shorten_path(_field(data, key))

    return summarize


def _grep(data: Mapping[str, Any]) -> str:
    pattern, path, glob = _field(data, "pattern"), _field(data, "path"), _field(data, "glob")
    if not pattern:
        return ""
    if path and glob:
        return f"{pattern} in {path} ({glob})"
    if path or glob:
        return f"{pattern} in {path or glob}"
    return pattern


def _todos(data: Mapping[str, Any]) -> str:
    todos = data.get("todos")
    if not isinstance(todos, list):
        return ""
    items = []
    for todo in todos:
        if not isinstance(todo, Mapping):
            continue
        content = _field(todo, "content")
        if content:
            items.append(f"{_TODO_MARKS.get(_str(todo.get('status')), '☐')} {content}")
    return " · ".join(items)


def _first_short_string(data: Mapping[str, Any]) -> str:
    """For tools we do not know (MCP tools...): the first value that reads like a label."""
    for value in data.values():
        text = value.strip() if isinstance(value, str) else ""
        if text and "\n" not in text and len(text) <= _MAX_GUESS:
            return _one_line(text)
    return ""


_SUMMARIZERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "Bash": _bash,
    "Read": _path_of("file_path"),
    "Write": _path_of("file_path"),
    "Edit": _path_of("file_path"),
    "MultiEdit": _path_of("file_path"),
    "NotebookEdit": _path_of("notebook_path"),
    "Grep": _grep,
    "Glob": lambda data: _field(data, "pattern"),
    "WebFetch": lambda data: _field(data, "url"),
    "WebSearch": lambda data: _field(data, "query"),
    "TodoWrite": _todos,
    "Task": lambda data: _field(data, "description"),
    "Agent": lambda data: _field(data, "description"),
}


# --- public API ---------------------------------------------------------------------------------


def tool_icon(tool: str) -> str:
    """A single emoji for the tool's family (🔧 for anything unknown)."""
    return _ICONS.get(tool, _DEFAULT_ICON) if isinstance(tool, str) else _DEFAULT_ICON


def tool_summary(tool: str, input: Mapping[str, Any] | Any) -> str:
    """One line (at most ``MAX_SUMMARY`` characters) describing what the call does.

    ``input`` keeps the name of the SDK's ``tool_use`` field. Falls back to the tool name when the
    input holds nothing usable; never raises.
    """
    name = _one_line(tool) if isinstance(tool, str) else ""
    data = input if isinstance(input, Mapping) else {}
    summarize = _SUMMARIZERS.get(name, _first_short_string)
    try:
        summary = summarize(data)
    except Exception:  # a Mapping subclass with a hostile __getitem__, say: show the name instead
        summary = ""
    return _truncate(summary or name or "tool")


def group_words(tool: str) -> tuple[str, str, str] | None:
    """``(verb, singular, plural)`` for labelling consecutive calls of ``tool``; the chat's
    front end builds its group labels from these too."""
    return _GROUP_PHRASES.get(tool) if isinstance(tool, str) else None


def group_label(tool: str, count: int) -> str:
    """Label for ``count`` consecutive calls of ``tool``: "Read 5 files", "Ran 1 command"."""
    phrase = group_words(tool)
    if phrase is None:
        return f"{tool} ×{count}"
    verb, singular, plural = phrase
    return f"{verb} {count} {singular if count == 1 else plural}"
