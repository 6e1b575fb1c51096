"""Notebooks diffed cell by cell: nbdime matches the cells of the two versions, sources are shown
as unified diffs and outputs are summarized in words, never as the notebook's raw JSON."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

MAX_NOTEBOOK_BYTES = 8 * 1024 * 1024  # each side; a larger notebook is shown as a text diff


class NotANotebook(ValueError):
    """The text is not a notebook nbformat can read (the reason is for people)."""


@dataclass(frozen=True)
class NotebookDiff:
    text: str  # the readable cell-wise diff
    cells: list[dict[str, Any]]  # [{"index", "cell_type", "status", "source_diff", "outputs"}]


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


def diff_notebook(old_raw: bytes | None, new_raw: bytes | None) -> NotebookDiff:
    """The cell-wise diff of two versions of a notebook; :class:`NotANotebook` when either side
    cannot be read as one (the caller falls back to a text diff)."""
    from nbdime import diff_notebooks

    old, new = read_notebook(old_raw), read_notebook(new_raw)
    old_cells, new_cells = list(old.get("cells", [])), list(new.get("cells", []))
    cells: list[dict[str, Any]] = []
    for old_i, new_i in _pairs(diff_notebooks(old, new), len(old_cells), len(new_cells)):
        a = old_cells[old_i] if old_i is not None else None
        b = new_cells[new_i] if new_i is not None else None
        cell = _cell_change(a, b, new_i if new_i is not None else old_i)
        if cell is not None:
            cells.append(cell)
    lines = [_describe(c) for c in cells]
    if _strip_ids(old.get("metadata", {})) != _strip_ids(new.get("metadata", {})):
        lines.insert(0, "notebook metadata changed\n")
    return NotebookDiff("".join(lines), cells)


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


def _cell_change(a: Any, b: Any, index: int | None) -> dict[str, Any] | None:
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
    hunks = list(difflib.unified_diff(old_source.splitlines(), new_source.splitlines(), lineterm="", n=3))
    # unified_diff's ---/+++ header names nothing here: the cell is named above its hunks.
    source_diff = "".join(line + "\n" for line in hunks[2:])
    return {
        "index": index, "cell_type": cell_type, "status": status, "source_diff": source_diff,
        "outputs": _outputs_summary(old_outputs, new_outputs, status, cell_type),
    }  # fmt: skip


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
