"""Icons, one-line summaries and group labels for tool-call rows in the chat widget."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from jupyter_cloudws.widget.tools import MAX_SUMMARY, group_label, tool_icon, tool_summary


@pytest.mark.parametrize(
    ("tool", "icon"),
    [
        ("Bash", "💻"),
        ("Read", "📄"),
        ("Write", "✏️"),
        ("Edit", "✏️"),
        ("MultiEdit", "✏️"),
        ("NotebookEdit", "✏️"),
        ("Grep", "🔍"),
        ("Glob", "🔍"),
        ("WebFetch", "🌐"),
        ("WebSearch", "🌐"),
        ("TodoWrite", "☑"),
        ("Task", "🤖"),
        ("Agent", "🤖"),
        ("mcp__github__create_issue", "🔧"),
        ("", "🔧"),
    ],
)
def test_tool_icon(tool: str, icon: str) -> None:
    assert tool_icon(tool) == icon


def test_tool_icon_non_string() -> None:
    assert tool_icon(None) == "🔧"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tool", "data", "expected"),
    [
        ("Bash", {"command": "ls -la", "description": "List files"}, "ls -la"),
        ("Read", {"file_path": "/repo/src/app.py", "offset": 10}, "/repo/src/app.py"),
        ("Write", {"file_path": "/repo/new.txt", "content": "hello\nworld"}, "/repo/new.txt"),
        ("Edit", {"file_path": "/repo/a.py", "old_string": "x", "new_string": "y"}, "/repo/a.py"),
        ("MultiEdit", {"file_path": "/repo/b.py", "edits": []}, "/repo/b.py"),
        ("NotebookEdit", {"notebook_path": "/repo/nb.ipynb", "new_source": "1"}, "/repo/nb.ipynb"),
        ("Grep", {"pattern": "TODO"}, "TODO"),
        ("Grep", {"pattern": "TODO", "path": "src"}, "TODO in src"),
        ("Grep", {"pattern": "TODO", "glob": "*.py"}, "TODO in *.py"),
        ("Grep", {"pattern": "TODO", "path": "src", "glob": "*.py"}, "TODO in src (*.py)"),
        ("Glob", {"pattern": "**/*.py"}, "**/*.py"),
        ("WebFetch", {"url": "https://example.com/a", "prompt": "summarize"}, "https://example.com/a"),
        ("WebSearch", {"query": "pygments css classes"}, "pygments css classes"),
        ("Task", {"description": "Explore the repo", "prompt": "long..."}, "Explore the repo"),
        ("Agent", {"description": "Review the diff", "subagent_type": "x"}, "Review the diff"),
    ],
)
def test_tool_summary(tool: str, data: dict[str, Any], expected: str) -> None:
    assert tool_summary(tool, data) == expected


def test_todowrite_summary() -> None:
    data = {
        "todos": [
            {"content": "write tests", "status": "pending"},
            {"content": "fix bug", "status": "completed"},
            {"content": "refactor", "status": "in_progress", "activeForm": "Refactoring"},
        ]
    }
    assert tool_summary("TodoWrite", data) == "☐ write tests · ☑ fix bug · ◐ refactor"


def test_todowrite_skips_odd_items() -> None:
    data = {"todos": ["junk", None, {"status": "pending"}, {"content": "keep", "status": "weird"}]}
    assert tool_summary("TodoWrite", data) == "☐ keep"


def test_unknown_tool_uses_first_short_string() -> None:
    data = {"count": 3, "body": "line one\nline two", "repo": "owner/name", "title": "later"}
    assert tool_summary("mcp__github__create_issue", data) == "owner/name"


def test_unknown_tool_without_strings_falls_back_to_name() -> None:
    assert tool_summary("mcp__x__y", {"n": 1, "flag": True, "big": "x" * 500}) == "mcp__x__y"


def test_missing_field_falls_back_to_name() -> None:
    assert tool_summary("Read", {}) == "Read"
    assert tool_summary("Bash", {"command": "   \n  "}) == "Bash"
    assert tool_summary("Grep", {"path": "src"}) == "Grep"


def test_bash_multiline_marks_hidden_lines() -> None:
    assert tool_summary("Bash", {"command": "cd /repo\nmake test\n"}) == "cd /repo …"
    assert tool_summary("Bash", {"command": "\n\n  echo hi  \n"}) == "echo hi"


def test_bash_long_command_truncated() -> None:
    summary = tool_summary("Bash", {"command": "echo " + "a" * 300})
    assert len(summary) <= MAX_SUMMARY
    assert summary.endswith("…")
    assert summary.startswith("echo aaa")


def test_bash_long_multiline_command_truncated_once() -> None:
    summary = tool_summary("Bash", {"command": "echo " + "a" * 300 + "\nsecond"})
    assert len(summary) <= MAX_SUMMARY
    assert summary.endswith("…")
    assert "second" not in summary


def test_long_path_shortened_from_the_left() -> None:
    path = "/" + "/".join(f"directory{i:02d}" for i in range(20)) + "/module.py"
    summary = tool_summary("Read", {"file_path": path})
    assert len(summary) <= MAX_SUMMARY
    assert summary.startswith("…/")
    assert summary.endswith("/module.py")
    # Cut at a separator, not in the middle of a directory name.
    assert summary[2:].split("/")[0].startswith("directory")


def test_long_values_truncated_everywhere() -> None:
    long = "word " * 100
    for tool, data in [
        ("WebSearch", {"query": long}),
        ("WebFetch", {"url": "https://e.com/" + "p" * 300}),
        ("Task", {"description": long}),
        ("Grep", {"pattern": long, "path": long}),
        ("TodoWrite", {"todos": [{"content": long, "status": "pending"}] * 5}),
    ]:
        summary = tool_summary(tool, data)
        assert len(summary) <= MAX_SUMMARY, tool
        assert summary.endswith("…"), tool


def test_summary_is_one_line() -> None:
    assert tool_summary("WebSearch", {"query": "a\nb\tc"}) == "a b c"
    assert tool_summary("Task", {"description": "x\r\ny"}) == "x y"


class _Hostile(Mapping[str, Any]):
    """A mapping that blows up on access, standing in for anything unexpected."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


ODD_INPUTS: list[Any] = [
    None,
    "just a string",
    42,
    [1, 2, 3],
    {},
    {"command": None},
    {"command": 123},
    {"command": ["ls", "-la"]},
    {"file_path": {"nested": True}},
    {"todos": "not a list"},
    {"todos": [{"content": 5, "status": None}]},
    {"pattern": b"bytes"},
    {"url": True},
    _Hostile(),
]
TOOLS = ["Bash", "Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "Grep", "Glob", "WebFetch", "WebSearch",
         "TodoWrite", "Task", "Agent", "Unknown", ""]  # fmt: skip


@pytest.mark.parametrize("data", ODD_INPUTS, ids=lambda d: type(d).__name__)
@pytest.mark.parametrize("tool", TOOLS)
def test_odd_inputs_never_raise(tool: str, data: Any) -> None:
    summary = tool_summary(tool, data)
    assert isinstance(summary, str)
    assert summary  # always something to show
    assert "\n" not in summary
    assert len(summary) <= MAX_SUMMARY


def test_numbers_are_stringified() -> None:
    assert tool_summary("Bash", {"command": 123}) == "123"


def test_non_string_tool_name_never_raises() -> None:
    assert isinstance(tool_summary(None, {"x": "y"}), str)  # type: ignore[arg-type]
    assert isinstance(group_label(None, 2), str)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tool", "count", "label"),
    [
        ("Read", 5, "Read 5 files"),
        ("Read", 1, "Read 1 file"),
        ("Write", 2, "Wrote 2 files"),
        ("Write", 1, "Wrote 1 file"),
        ("Edit", 3, "Edited 3 files"),
        ("MultiEdit", 1, "Edited 1 file"),
        ("Bash", 4, "Ran 4 commands"),
        ("Bash", 1, "Ran 1 command"),
        ("Grep", 3, "Searched 3 patterns"),
        ("Grep", 1, "Searched 1 pattern"),
        ("Glob", 2, "Listed 2 patterns"),
        ("Glob", 1, "Listed 1 pattern"),
        ("WebFetch", 2, "Fetched 2 pages"),
        ("WebFetch", 1, "Fetched 1 page"),
        ("WebSearch", 3, "WebSearch ×3"),
        ("mcp__x__y", 2, "mcp__x__y ×2"),
    ],
)
def test_group_label(tool: str, count: int, label: str) -> None:
    assert group_label(tool, count) == label
