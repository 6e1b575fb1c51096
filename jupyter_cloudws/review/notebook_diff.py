"""Notebooks diffed cell by cell: nbdime matches the cells of the two versions, sources are shown
as unified diffs and outputs are summarized in words, never as the notebook's raw JSON.

nbdime's matching costs about the square of a cell's lines and of the number of cells (one cell of
8,000 short repeated lines took 51 s, 3,000 one-line cells 20 s), so it is given only notebooks
within :class:`MatchBudget`; others have their cells paired by id (or position) instead, each
pair diffed in time linear in its lines beyond what difflib is given, with a ``note`` saying so.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

MAX_NOTEBOOK_BYTES = 8 * 1024 * 1024  # each side; a larger notebook is shown as a text diff
# difflib's matching is quadratic in the worst case too: past this many lines (both sides of one
# cell, once their common start and end are set aside) the rest is shown as removed and added.
MAX_DIFFLIB_LINES = 4000
TOO_LARGE_NOTE = "too large to diff cell by cell with nbdime ({why}); cells paired by {by}"


@dataclass(frozen=True)
class MatchBudget:
    """What nbdime is given (measured here: 1,000 lines in one cell about 1 s, 300 cells 0.4 s).
    Lines count each cell as at least one; both sides must be within the per-notebook limits."""

    max_cell_lines: int = 500
    max_notebook_lines: int = 2000
    max_cells: int = 300
    # Lines nbdime is given across one answer: each notebook it matches uses its lines (both
    # sides), and diff_notebook is handed what is left; later notebooks have their cells paired.
    answer_lines: int = 10_000
    # Lines difflib may match across one answer (each cell's changed middle, both sides); past
    # them a cell's middle is shown removed then added, as past MAX_DIFFLIB_LINES.
    difflib_lines: int = 50_000


class NotANotebook(ValueError):
    """The text is not a notebook nbformat can read (the reason is for people)."""


@dataclass(frozen=True)
class NotebookDiff:
    text: str  # the readable cell-wise diff
    cells: list[dict[str, Any]]  # [{"index", "cell_type", "status", "source_diff", "outputs"}]
    note: str | None = None  # why the cells were not matched by nbdime
    matched_lines: int = 0  # what nbdime was given, counted against the answer's budget
    difflib_lines: int = 0  # what difflib was given, likewise


def read_notebook(raw: bytes | None) -> Any:
    """The notebook in ``raw`` as nbformat 4 (None: the file does not exist on that side)."""
    import nbformat

    if raw is None:
        return nbformat.v4.new_notebook()
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise NotANotebook(f"it is larger than {MAX_NOTEBOOK_BYTES // (1024 * 1024)} MiB")
    try:
        text = raw.decode("utf-8")
        return nbformat.reads(text, as_version=4)
    except UnicodeDecodeError:
        raise NotANotebook("it is not UTF-8 text") from None
    except RecursionError:
        raise NotANotebook("its JSON is nested too deeply") from None
    except Exception as exc:  # nbformat raises many kinds: NotJSONError, KeyError, ValidationError...
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise NotANotebook(f"it is not valid notebook JSON ({reason})") from None


def diff_notebook(old_raw: bytes | None, new_raw: bytes | None, budget: MatchBudget = MatchBudget()) -> NotebookDiff:
    """The cell-wise diff of two versions of a notebook; :class:`NotANotebook` when either side
    cannot be read as one (the caller falls back to a text diff)."""
    old, new = read_notebook(old_raw), read_notebook(new_raw)
    old_cells, new_cells = list(old.get("cells", [])), list(new.get("cells", []))
    why, lines = _over_budget(old_cells, new_cells, budget)
    note = None
    if why is None:
        from nbdime import diff_notebooks

        pairs = _pairs(diff_notebooks(old, new), len(old_cells), len(new_cells))
    else:
        pairs, by = _plain_pairs(old_cells, new_cells)
        note, lines = TOO_LARGE_NOTE.format(why=why, by=by), 0
    cells: list[dict[str, Any]] = []
    difflib_left = [budget.difflib_lines]  # counted down by each cell's diff
    for old_i, new_i in pairs:
        a = old_cells[old_i] if old_i is not None else None
        b = new_cells[new_i] if new_i is not None else None
        cell = _cell_change(a, b, new_i if new_i is not None else old_i, difflib_left)
        if cell is not None:
            cells.append(cell)
    text = [_describe(c) for c in cells]
    if _strip_ids(old.get("metadata", {})) != _strip_ids(new.get("metadata", {})):
        text.insert(0, "notebook metadata changed\n")
    if note is not None:
        text.insert(0, f"note: {note}\n\n")
    return NotebookDiff("".join(text), cells, note, lines, budget.difflib_lines - difflib_left[0])


def _line_count(cell: Any) -> int:
    return max(1, len(_source(cell).splitlines()))


def _over_budget(old_cells: list[Any], new_cells: list[Any], budget: MatchBudget) -> tuple[str | None, int]:
    """Why nbdime must not be given these cells (None: it may), and the lines it would be given."""
    sides = [[_line_count(c) for c in cells] for cells in (old_cells, new_cells)]
    lines = sum(sum(side) for side in sides)
    if any(len(side) > budget.max_cells for side in sides):
        return f"over {budget.max_cells:,} cells", lines
    if any(max(side, default=0) > budget.max_cell_lines for side in sides):
        return f"a cell over {budget.max_cell_lines:,} lines", lines
    if any(sum(side) > budget.max_notebook_lines for side in sides):
        return f"over {budget.max_notebook_lines:,} lines", lines
    if lines > budget.answer_lines:
        return f"{lines:,} lines, more than is left of this answer's budget", lines
    return None, lines


def _plain_pairs(old_cells: list[Any], new_cells: list[Any]) -> tuple[list[tuple[int | None, int | None]], str]:
    """Cells paired without nbdime: by id when every cell on both sides has a distinct one
    (nbformat 4.5), else by position. A deleted cell comes where it was, among the new ones."""
    old_ids, new_ids = [c.get("id") for c in old_cells], [c.get("id") for c in new_cells]
    by_id = all(isinstance(i, str) and i for i in old_ids + new_ids)
    by_id = by_id and len(set(old_ids)) == len(old_ids) and len(set(new_ids)) == len(new_ids)
    if not by_id:
        n = max(len(old_cells), len(new_cells))
        pairs = [(i if i < len(old_cells) else None, i if i < len(new_cells) else None) for i in range(n)]
        return pairs, "position"
    where = {cell_id: i for i, cell_id in enumerate(old_ids)}
    pairs: list[tuple[int | None, int | None]] = []
    emitted: set[int] = set()
    kept = set(new_ids)
    next_old = 0
    for new_i, cell_id in enumerate(new_ids):
        old_i = where.get(cell_id)
        if old_i is not None:
            for gone in range(next_old, old_i):  # cells deleted before this one
                if gone not in emitted and old_ids[gone] not in kept:
                    pairs.append((gone, None))
                    emitted.add(gone)
            next_old = max(next_old, old_i + 1)
            emitted.add(old_i)
        pairs.append((old_i, new_i))
    pairs += [(i, None) for i, cell_id in enumerate(old_ids) if i not in emitted and cell_id not in kept]
    return pairs, "id"


def _pairs(diff: list[Any], n_old: int, n_new: int) -> list[tuple[int | None, int | None]]:
    """Old and new cell indices as nbdime matched them: (old, new) for a kept or changed cell,
    (None, new) for an added one, (old, None) for a deleted one, in notebook order."""
    ops: list[Any] = []
    for entry in diff:
        if entry["key"] == "cells" and entry["op"] == "patch":
            ops = entry["diff"]
    order = {"addrange": 0, "removerange": 1, "patch": 2}
    pairs: list[tuple[int | None, int | None]] = []
    old_i = new_i = 0
    for op in sorted(ops, key=lambda o: (o["key"], order.get(o["op"], 3))):
        while old_i < op["key"]:
            pairs.append((old_i, new_i))
            old_i, new_i = old_i + 1, new_i + 1
        if op["op"] == "addrange":
            for _ in op["valuelist"]:
                pairs.append((None, new_i))
                new_i += 1
        elif op["op"] == "removerange":
            for _ in range(op["length"]):
                pairs.append((old_i, None))
                old_i += 1
        elif op["op"] == "patch":
            pairs.append((old_i, new_i))
            old_i, new_i = old_i + 1, new_i + 1
    while old_i < n_old and new_i < n_new:
        pairs.append((old_i, new_i))
        old_i, new_i = old_i + 1, new_i + 1
    return pairs


def _cell_change(a: Any, b: Any, index: int | None, difflib_left: list[int]) -> dict[str, Any] | None:
    """The change from cell ``a`` to cell ``b`` (either may be None), or None when neither the
    source nor the outputs changed (a new cell id or execution metadata alone is no change)."""
    old_source, new_source = _source(a), _source(b)
    old_outputs, new_outputs = _outputs(a), _outputs(b)
    if a is not None and b is not None:
        if old_source == new_source and _canon(old_outputs) == _canon(new_outputs) and a["cell_type"] == b["cell_type"]:
            return None
        status = "modified"
    else:
        status = "added" if a is None else "deleted"
    cell_type = (b if b is not None else a)["cell_type"]
    source_diff = unified_hunks(old_source.splitlines(), new_source.splitlines(), difflib_left=difflib_left)
    return {
        "index": index, "cell_type": cell_type, "status": status, "source_diff": source_diff,
        "outputs": _outputs_summary(old_outputs, new_outputs, status, cell_type),
    }  # fmt: skip


def unified_hunks(a: list[str], b: list[str], context: int = 3, difflib_left: list[int] | None = None) -> str:
    """The hunks of a unified diff from ``a`` to ``b`` (no ---/+++ header: the cell is named
    above them). The common start and end are set aside first; what remains is matched by difflib
    when it is within :data:`MAX_DIFFLIB_LINES` and ``difflib_left[0]`` (lines, counted down),
    else shown as removed then added (linear time)."""
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    a_mid, b_mid = a[start : len(a) - end], b[start : len(b) - end]
    size = len(a_mid) + len(b_mid)
    if size <= MAX_DIFFLIB_LINES and (difflib_left is None or size <= difflib_left[0]):
        if difflib_left is not None:
            difflib_left[0] -= size
        middle = difflib.SequenceMatcher(None, a_mid, b_mid).get_opcodes()
    else:
        middle = [("replace", 0, len(a_mid), 0, len(b_mid))]
    opcodes = [("equal", 0, start, 0, start)] if start else []
    opcodes += [(tag, i1 + start, i2 + start, j1 + start, j2 + start) for tag, i1, i2, j1, j2 in middle]
    if end:
        opcodes.append(("equal", len(a) - end, len(a), len(b) - end, len(b)))
    matcher = difflib.SequenceMatcher(None, [], [])
    matcher.a, matcher.b, matcher.opcodes = a, b, opcodes  # group these opcodes, matching nothing again
    out: list[str] = []
    for group in matcher.get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [f" {line}\n" for line in a[i1:i2]]
                continue
            out += [f"-{line}\n" for line in a[i1:i2]]
            out += [f"+{line}\n" for line in b[j1:j2]]
    return "".join(out)


def _range(start: int, stop: int) -> str:
    """A unified diff's ``start,length`` (1-based; an empty range names the line before it)."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start if length == 0 else start + 1},{length}"


def _source(cell: Any) -> str:
    if cell is None:
        return ""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _outputs(cell: Any) -> list[Any]:
    return list(cell.get("outputs", [])) if cell is not None else []


def _canon(outputs: list[Any]) -> str:
    return json.dumps(outputs, sort_keys=True, default=str)


def _strip_ids(value: Any) -> Any:
    return {k: v for k, v in dict(value).items() if k != "id"}


def _kinds(outputs: list[Any]) -> list[str]:
    """What each output is, in words: ``stdout``, ``error: ValueError``, or its richest MIME types."""
    kinds: list[str] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            label = str(out.get("name", "stream"))
        elif kind == "error":
            label = f"error: {out.get('ename', '')}".rstrip(": ")
        else:
            mimes = [m for m in dict(out.get("data", {})) if m != "text/plain"] or ["text/plain"]
            label = ", ".join(mimes)
        if label not in kinds:
            kinds.append(label)
    return kinds


def _count(n: int) -> str:
    return f"{n} output" if n == 1 else f"{n} outputs"


def _outputs_summary(old: list[Any], new: list[Any], status: str, cell_type: str) -> str:
    if cell_type != "code" or (not old and not new):
        return ""
    kinds = ", ".join(_kinds(new if new else old))
    if status == "added":
        return f"{_count(len(new))} ({kinds})"
    if status == "deleted":
        return f"had {_count(len(old))} ({kinds})"
    if _canon(old) == _canon(new):
        return ""
    if len(old) == len(new):
        return f"{_count(len(new))} changed ({kinds})"
    return f"{_count(len(old))} → {_count(len(new))}" + (f" ({kinds})" if new else "")


def _describe(cell: dict[str, Any]) -> str:
    head = f"## cell {cell['index'] + 1} [{cell['cell_type']}] {cell['status']}\n"
    body = cell["source_diff"]
    outputs = f"outputs: {cell['outputs']}\n" if cell["outputs"] else ""
    return head + body + outputs + "\n"
