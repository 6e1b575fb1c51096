"""nbdime is given only notebooks it can match in bounded time: a larger one, or one past the
answer's budget, has its cells paired by id (or position) and says so, still readable, never JSON."""

from __future__ import annotations

import json

import pytest
from hub_fakes import ADA, make_hub
from review_support import Workspace, notebook, stream
from support import make_bare_repo

from jupyter_cloudws.review import DiffLimits
from jupyter_cloudws.review.notebook_diff import MatchBudget, diff_notebook, unified_hunks


@pytest.fixture
def ws(memory_store, fake_backend, tmp_path) -> Workspace:
    hub = make_hub(memory_store, fake_backend, data_dir=str(tmp_path / "data"))
    origin = make_bare_repo(tmp_path, "project", {"README.md": "# project\n"})
    return Workspace(hub, origin, tmp_path / "work")


async def test_a_cell_of_thousands_of_repeated_lines_is_paired_not_matched_by_nbdime(ws):
    # The reviewer's notebook: nbdime took 51 s on it in a worker thread (46 KB of JSON).
    before = notebook(("code", "x = 1\n" * 8000, []))
    after = notebook(("code", "".join("x = 1\n" if i % 7 else "y = 2\n" for i in range(8000)), [stream("ok\n")]))
    await ws.prompt({"big.ipynb": before})
    prompt = await ws.prompt({"big.ipynb": after})
    (nb,) = (await ws.hub.changes(ws.sid, ADA, prompt))["files"]
    assert nb["notebook"] is True
    assert "too large to diff cell by cell" in nb["note"] and "a cell over 500 lines" in nb["note"]
    assert "paired by id" in nb["note"]
    (cell,) = nb["cells"]
    assert (cell["index"], cell["cell_type"], cell["status"]) == (0, "code", "modified")
    # Past difflib's share the changed middle is shown removed, then added, around the common end.
    lines = cell["source_diff"].splitlines()
    assert lines[0] == "@@ -1,7998 +1,7998 @@" and lines[-3:] == [" x = 1"] * 3
    assert (lines.count("-x = 1"), lines.count("+x = 1"), lines.count("+y = 2")) == (7995, 6852, 1143)
    assert cell["outputs"] == "0 outputs → 1 output (stdout)"
    assert nb["diff"].startswith("note: too large to diff cell by cell")
    assert '"cell_type":' not in nb["diff"] and '"source":' not in nb["diff"]


async def test_past_the_answers_budget_later_notebooks_are_paired(ws):
    ws.hub.review.limits = DiffLimits(notebook_match=MatchBudget(answer_lines=6))
    one = notebook(("code", "a = 1\n", []), ("code", "b = 1\n", []))
    two = notebook(("code", "a = 2\n", []), ("code", "b = 1\n", []))
    await ws.prompt({"first.ipynb": one, "second.ipynb": one})
    prompt = await ws.prompt({"first.ipynb": two, "second.ipynb": two})
    files = {f["path"]: f for f in (await ws.hub.changes(ws.sid, ADA, prompt))["files"]}
    assert files["first.ipynb"]["note"] is None, "4 lines: within the budget, matched by nbdime"
    assert "4 lines, more than is left of this answer's budget" in files["second.ipynb"]["note"]
    for nb in files.values():
        assert [(c["index"], c["status"]) for c in nb["cells"]] == [(0, "modified")]
        assert "-a = 1\n+a = 2\n" in nb["cells"][0]["source_diff"]


async def test_past_the_answers_difflib_budget_later_cells_are_shown_removed_then_added(ws):
    ws.hub.review.limits = DiffLimits(notebook_match=MatchBudget(difflib_lines=6))
    one, two = notebook(("code", "x\ny\nz\n", [])), notebook(("code", "X\ny\nZ\n", []))
    await ws.prompt({"first.ipynb": one, "second.ipynb": one})
    prompt = await ws.prompt({"first.ipynb": two, "second.ipynb": two})
    files = {f["path"]: f for f in (await ws.hub.changes(ws.sid, ADA, prompt))["files"]}
    assert files["first.ipynb"]["cells"][0]["source_diff"] == "@@ -1,3 +1,3 @@\n-x\n+X\n y\n-z\n+Z\n"
    assert files["second.ipynb"]["cells"][0]["source_diff"] == "@@ -1,3 +1,3 @@\n-x\n-y\n-z\n+X\n+y\n+Z\n"


def cells_of(diff) -> list[tuple[int, str, str]]:
    return [(c["index"], c["status"], c["source_diff"]) for c in diff.cells]


def test_paired_by_id_a_moved_deleted_and_added_cell_keep_their_places():
    old = notebook(("code", "keep\n", []), ("code", "gone\n", []), ("markdown", "edit me\n", []))
    new = json.loads(notebook(("code", "keep\n", []), ("markdown", "edited\n", []), ("code", "new\n", [])))
    new["cells"][1]["id"], new["cells"][2]["id"] = "cell-2", "cell-new"  # cell-1 deleted, cell-2 edited
    diff = diff_notebook(old.encode(), json.dumps(new).encode(), MatchBudget(max_cells=2))
    assert diff.note == "too large to diff cell by cell with nbdime (over 2 cells); cells paired by id"
    assert cells_of(diff) == [
        (1, "deleted", "@@ -1 +0,0 @@\n-gone\n"),
        (1, "modified", "@@ -1 +1 @@\n-edit me\n+edited\n"),
        (2, "added", "@@ -0,0 +1 @@\n+new\n"),
    ]


def test_without_cell_ids_cells_are_paired_by_position():
    old = json.loads(notebook(("code", "a\n", []), ("code", "b\n", [])))
    new = json.loads(notebook(("code", "a\n", []), ("code", "B\n", []), ("code", "c\n", [])))
    for nb in (old, new):
        nb["nbformat_minor"] = 4
        for cell in nb["cells"]:
            del cell["id"]
    diff = diff_notebook(json.dumps(old).encode(), json.dumps(new).encode(), MatchBudget(max_notebook_lines=2))
    assert diff.note is not None and diff.note.endswith("(over 2 lines); cells paired by position")
    assert [(i, s) for i, s, _ in cells_of(diff)] == [(1, "modified"), (2, "added")]


def test_a_huge_changed_middle_is_shown_removed_then_added_around_its_common_ends():
    a = ["head"] * 5 + [f"old {i % 50}" for i in range(5000)] + ["tail"] * 5
    b = ["head"] * 5 + [f"new {i % 50}" for i in range(5000)] + ["tail"] * 5
    hunks = unified_hunks(a, b)
    assert hunks.startswith("@@ -3,5006 +3,5006 @@\n head\n head\n head\n-old 0\n")
    assert hunks.endswith("+new 49\n tail\n tail\n tail\n")
    assert hunks.count("\n-") == 5000 and hunks.count("\n+") == 5000


def test_past_the_difflib_budget_a_cells_changed_middle_is_shown_removed_then_added():
    old = notebook(("code", "a\nb\nc\n", []), ("code", "d\ne\nf\n", []))
    new = notebook(("code", "a\nB\nc\n", []), ("code", "d\nE\nf\nG\n", []))
    # Cell 1's changed middle is 2 lines (b; B), within 3; cell 2's, 5 lines (e, f; E, f, G), is past the 1 left.
    diff = diff_notebook(old.encode(), new.encode(), MatchBudget(difflib_lines=3))
    assert cells_of(diff) == [
        (0, "modified", "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"),
        (1, "modified", "@@ -1,3 +1,4 @@\n d\n-e\n-f\n+E\n+f\n+G\n"),
    ]
    assert diff.difflib_lines == 2
