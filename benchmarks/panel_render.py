"""The chat front end (chat.js) in headless Chromium: rendering a long transcript, and what one more
event costs as the transcript grows, against the chat.js before incremental rendering (baseline,
``git show BASELINE:jupyter_cloudws/widget/chat.js``) on the same inputs, in the same run.

The transcript comes from the real ``Transcript`` reducer folding realistic session events: prompts,
tool calls (running, then completed with output), assistant markdown with code, git events with
files, results. chat.js runs as it ships (an ES module from a blob URL) over a stand-in model with
anywidget's surface (get/set/on/off/send/save_changes), in a 420 px wide panel with chat.css and the
Pygments CSS. Timed inside the page with ``performance.now()``; each measure forces layout
(``scrollHeight``), as the browser must before it paints.

* whole render: ``initialize`` + ``render`` of the whole transcript of ``--events`` events, to
  layout done, and to the next frame; the median of ``--repeat`` fresh pages;
* per event: after rendering the transcript of the first N events (N = 100, 1,000, ``--events``),
  the next ``--window`` events delivered one upsert at a time as the kernel sends them, each to
  layout done; the median and mean per event;
* the Python fold of the ``--events`` events (``Transcript.apply``, markdown and highlighting).

    .venv/bin/python benchmarks/panel_render.py [--events 5000] [--window 200] [--baseline 77edd42]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from jupyter_cloudws.widget.markdown import PYGMENTS_CSS
from jupyter_cloudws.widget.transcript import Item, Transcript

REPO = Path(__file__).resolve().parents[1]
WIDGET = REPO / "jupyter_cloudws" / "widget"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
WHOLE_RENDER_TARGET_MS = 500
STATE = {"session": {"id": "s1", "title": "Parser work", "branch": "cloudws/parser", "repo": "https://example.test/r.git"},
         "view": "chat", "connection": {"state": "connected"}, "sandbox_status": "ready", "working": False,
         "pull_request": {}, "changes_total": {}, "pr_form": {}, "pr_poll_interval_s": 3600, "sessions": [],
         "recent_repos": [], "models": []}  # fmt: skip

# ``window.bench`` in a page: mounts chat.js (source) over a stand-in model holding ``items``.
PAGE_JS = """async ([source, css]) => {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const module = await import(url);
  const chat = module.default;
  const style = document.createElement("style");
  style.textContent = css;
  document.head.append(style);
  const standIn = (state) => {
    const handlers = {};
    return {
      get: (k) => state[k], set: (k, v) => { state[k] = v; (handlers[`change:${k}`] || []).forEach((f) => f()); },
      send: () => {}, save_changes: () => {},
      on: (name, fn) => { (handlers[name] = handlers[name] || []).push(fn); },
      off: (name, fn) => { handlers[name] = (handlers[name] || []).filter((f) => f !== fn); },
      emit: (name, ...args) => (handlers[name] || []).forEach((f) => f(...args)),
    };
  };
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  const mount = (state) => {
    const el = document.createElement("div");
    el.style.width = "420px";
    document.body.replaceChildren(el);
    const model = standIn(state);
    // Like anywidget, initialize and render each get a proxy of their own.
    const proxy = () => ({ get: model.get, set: model.set, send: model.send, save_changes: model.save_changes, on: model.on, off: model.off });
    const started = performance.now();
    chat.initialize({ model: proxy() });
    chat.render({ model: proxy(), el });
    const list = el.querySelector(".cw-transcript");
    void list.scrollHeight;
    return { model, list, started, laidOut: performance.now() };
  };
  window.bench = {
    async whole(state) {
      const { list, started, laidOut } = mount(state);
      await frame();
      return { layout_ms: laidOut - started, frame_ms: performance.now() - started,
        blocks: module.toBlocks(state.transcript).length, drawn: list.querySelectorAll(".cw-block").length };
    },
    async perEvent(state, upserts) {
      const { model, list } = mount(state);
      await frame();
      const times = [];
      for (const items of upserts) {
        const t0 = performance.now();
        model.emit("msg:custom", { type: "upsert", items });
        void list.scrollHeight;
        times.push(performance.now() - t0);
      }
      return { times, at_bottom: list.scrollHeight - list.scrollTop - list.clientHeight < 60 };
    },
  };
}"""


# --- the events: one prompt after another, all different -----------------------------------------


def answer(p: int, part: str) -> str:
    return (
        f"{part} **step {p}**: `parse_line()` now skips blank lines and comments.\n\n"
        f"| file | change |\n|---|---|\n| parser_{p}.py | skip blanks |\n| test_parser_{p}.py | new test |\n\n"
        f"```python\ndef parse_line_{p}(line: str) -> list[str] | None:\n"
        f"    if not line.strip() or line.startswith('#'):\n        return None\n"
        f"    return [field.strip() for field in line.split(',')][:{p % 7 + 2}]\n```\n\n"
        "- the old behaviour stays for quoted fields\n- run `pytest -q` to check\n"
    )


def source_text(p: int, t: int) -> str:
    return "".join(f"{n:4}  def f_{p}_{t}_{n}(x):  return x * {n} + {p}\n" for n in range(1, 41))


TOOLS = [  # (tool, its input for prompt p and call t, its output)
    ("Read", lambda p, t: {"file_path": f"/work/src/parser_{p}_{t}.py"}, source_text),
    ("Read", lambda p, t: {"file_path": f"/work/src/util_{p}_{t}.py"}, source_text),
    ("Grep", lambda p, t: {"pattern": f"parse_line_{p}", "path": "src"}, lambda p, t: f"src/parser_{p}.py:12\nsrc/cli.py:40\n"),
    ("Edit", lambda p, t: {"file_path": f"/work/src/parser_{p}.py", "old_string": "return x", "new_string": f"return x or {t}"},
     lambda p, t: f"The file /work/src/parser_{p}.py has been updated."),
    ("Bash", lambda p, t: {"command": "pytest -q tests/test_parser.py", "description": "Run the parser tests"},
     lambda p, t: "".join(f"tests/test_parser.py::test_case_{n} PASSED\n" for n in range(30)) + f"30 passed in 0.{p % 9}1s\n"),
    ("Bash", lambda p, t: {"command": "git status --short"}, lambda p, t: f" M src/parser_{p}.py\n?? tests/test_parser_{p}.py\n"),
]  # fmt: skip


def session_events(count: int) -> Iterator[dict[str, Any]]:
    seq = 0

    def ev(type_: str, **fields: Any) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return {"seq": seq, "ts": 1_700_000_000.0 + seq, "type": type_, **fields}

    p = 0
    while True:
        mid = f"m{p}"
        yield ev("user_message", message_id=mid, text=f"Make the parser skip blank lines ({p})", author={"name": "Ada"})
        yield ev("assistant_text", message_id=mid, index=0, text=answer(p, "First"))
        for t, (tool, make_input, make_output) in enumerate(TOOLS):
            call = {"message_id": mid, "call_id": f"c{p}-{t}", "tool": tool, "input": make_input(p, t)}
            yield ev("tool_call", status="running", **call)
            yield ev("tool_call", status="completed", output=make_output(p, t), duration_ms=20 + t * 35, **call)
        yield ev("assistant_text", message_id=mid, index=1, text=answer(p, "Done"))
        files = [{"path": f"src/parser_{p}.py", "status": "modified", "additions": 4, "deletions": 1},
                 {"path": f"tests/test_parser_{p}.py", "status": "added", "additions": 22, "deletions": 0}]  # fmt: skip
        yield ev("git", message_id=mid, branch="cloudws/parser", sha=f"{p:07x}abcdef", pushed=True, committed=True,
                 files=files, files_total=2, additions=26, deletions=1)  # fmt: skip
        yield ev("execution_complete", message_id=mid, success=True, cost_usd=0.0123, duration_ms=4200 + p)
        p += 1
        if seq >= count:
            return


# --- measuring -------------------------------------------------------------------------------------


def fold(events: list[dict[str, Any]], snapshot_at: set[int]) -> tuple[dict[int, list[Item]], list[list[Item]], float]:
    """({n: the items after n events}, the upsert of each event, seconds spent in Transcript.apply)."""
    t = Transcript()
    snapshots: dict[int, list[Item]] = {}
    upserts: list[list[Item]] = []
    spent_s = 0.0
    for n, event in enumerate(events):
        if n in snapshot_at:
            snapshots[n] = list(t.items)
        started = time.perf_counter()
        changed = t.apply(event)
        spent_s += time.perf_counter() - started
        upserts.append(changed)
    snapshots[len(events)] = list(t.items)
    return snapshots, upserts, spent_s


def baseline_source(rev: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:jupyter_cloudws/widget/chat.js"],
                          check=True, capture_output=True, text=True).stdout  # fmt: skip


class Inputs(NamedTuple):
    snapshots: dict[int, list[Item]]  # the items after n events
    upserts: list[list[Item]]  # what each event sends
    total: int  # events in the whole render
    lengths: list[int]  # where one more event is timed
    window: int
    repeat: int


def measure(browser: Any, source: str, inputs: Inputs) -> dict[str, Any]:
    snapshots, upserts, total, lengths, window, repeat = inputs
    css = (WIDGET / "chat.css").read_text() + "\n" + PYGMENTS_CSS

    def page() -> Any:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        p = context.new_page()
        p.set_content("<body></body>")
        p.evaluate(PAGE_JS, [source, css])
        return context, p

    whole = []
    for _ in range(repeat):
        context, p = page()
        whole.append(p.evaluate("(s) => window.bench.whole(s)", {**STATE, "transcript": snapshots[total]}))
        context.close()
    result: dict[str, Any] = {
        "layout_ms": statistics.median(w["layout_ms"] for w in whole),
        "frame_ms": statistics.median(w["frame_ms"] for w in whole),
        "blocks": whole[0]["blocks"],
        "drawn": whole[0]["drawn"],
        "per_event": {},
    }
    for n in lengths:
        context, p = page()
        got = p.evaluate("([s, u]) => window.bench.perEvent(s, u)",
                         [{**STATE, "transcript": snapshots[n]}, upserts[n : n + window]])  # fmt: skip
        context.close()
        assert got["at_bottom"], "the transcript should follow its end"
        result["per_event"][n] = (statistics.median(got["times"]), statistics.fmean(got["times"]))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--window", type=int, default=200, help="events timed one by one at each length")
    parser.add_argument("--repeat", type=int, default=3, help="fresh pages for the whole render (median)")
    parser.add_argument("--baseline", default="77edd42", help="the revision whose chat.js is the baseline")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium", file=sys.stderr)
        return 2
    lengths = [100, 1000, args.events]
    events = list(session_events(args.events + args.window))
    _, _, fold_s = fold(events[: args.events], set())  # the fold alone, as a session's replay does it
    snapshots, upserts, _ = fold(events, set(lengths))
    size_bytes = len(json.dumps(snapshots[args.events]))

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            inputs = Inputs(snapshots, upserts, args.events, lengths, args.window, args.repeat)
            runs = {
                "chat.js": measure(browser, (WIDGET / "chat.js").read_text(), inputs),
                f"baseline {args.baseline}": measure(browser, baseline_source(args.baseline), inputs),
            }
        finally:
            browser.close()

    new, old = runs.values()
    items = snapshots[args.events]
    print(
        f"{args.events:,} events -> {len(items):,} items, {new['blocks']:,} blocks "
        f"({new['drawn']:,} drawn at once, baseline {old['drawn']:,}), {size_bytes / 1e6:.1f} MB of JSON"
    )
    print(f"Python fold (Transcript.apply, markdown and highlighting): {fold_s * 1000:,.0f} ms "
          f"({fold_s * 1e6 / args.events:,.0f} µs per event)")  # fmt: skip
    print()
    print(f"{'':44}{'chat.js':>12}{'baseline':>12}{'ratio':>9}")

    def row(label: str, a: float, b: float) -> None:
        print(f"{label:44}{a:>12.2f}{b:>12.2f}{b / a:>9.1f}")

    row(f"whole render of {args.events:,} events, to layout (ms)", new["layout_ms"], old["layout_ms"])
    row("  ... to the next frame (ms)", new["frame_ms"], old["frame_ms"])
    for n in lengths:
        row(f"one more event at {n:,} events, median (ms)", new["per_event"][n][0], old["per_event"][n][0])
        row(f"one more event at {n:,} events, mean (ms)", new["per_event"][n][1], old["per_event"][n][1])
    for name, r in runs.items():
        pe = r["per_event"]
        print(f"{name}: per-event cost at {args.events:,} / at 100 events: {pe[args.events][0] / pe[100][0]:.2f} (median), "
              f"{pe[args.events][1] / pe[100][1]:.2f} (mean)")  # fmt: skip
    met = "met" if new["frame_ms"] < WHOLE_RENDER_TARGET_MS else "MISSED"
    print(f"whole render to the next frame < {WHOLE_RENDER_TARGET_MS} ms: {met}")
    return 0 if met == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
