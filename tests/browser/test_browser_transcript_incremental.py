"""chat.js draws the transcript incrementally, and the result is what a fresh render draws.

The widget's real front end in headless Chromium over a stand-in model (no JupyterLab), fed the
upserts that transcript.py makes for a scripted session: appends, tool calls folding into one
block, an earlier tool row and an earlier prompt updated in place, an interrupt that ends tool
rows, a streamed answer. The items reach chat.js wrapped in Proxies that record which items were
read, so "an append does not touch earlier blocks" is checked by what the code read, not by time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from jupyter_cloudws.widget.transcript import Transcript

WIDGET = Path(__file__).resolve().parents[2] / "jupyter_cloudws" / "widget"
CHAT_JS = (WIDGET / "chat.js").read_text()
BASE_STATE = {"session": {"id": "s1", "title": "T", "branch": "cloudws/t", "repo": "r"}, "view": "chat",
              "transcript": [], "connection": {}, "sandbox_status": "ready", "working": False,
              "pull_request": {}, "changes_total": {}, "pr_form": {}, "pr_poll_interval_s": 60}  # fmt: skip

# A stand-in for anywidget's model, initialized once and drawn in #view-a, each through a proxy of
# its own as anywidget does. ``window.kernel(msg)``
# delivers a custom message with its items wrapped in Proxies that count reads per item id in
# ``window.reads``; ``window.fresh(items)`` draws the same items on a new model (what a reload or a
# new output does) and returns its transcript's HTML; ``window.html(el)`` normalises a transcript
# (open state and the ticking seconds are the view's, not the items').
MOUNT = """async ([source, state]) => {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const chat = (await import(url)).default;
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
  window.reads = {};
  const counted = (item) => new Proxy(item, {
    get(target, key, receiver) { window.reads[target.id] = (window.reads[target.id] || 0) + 1; return Reflect.get(target, key, receiver); },
  });
  // Like anywidget, each call gets its own proxy of the one model.
  const proxy = (m) => ({ get: m.get, set: m.set, send: m.send, save_changes: m.save_changes, on: m.on, off: m.off });
  const model = standIn(state);
  window.model = model;
  chat.initialize({ model: proxy(model) });
  const mount = (id) => {
    const el = document.createElement("div");
    el.id = id;
    document.body.append(el);
    return chat.render({ model: proxy(model), el });
  };
  mount("view-a");
  window.mountSecond = () => { mount("view-b"); };
  window.kernel = (msg) => model.emit("msg:custom", msg.items ? { ...msg, items: msg.items.map(counted) } : msg);
  window.html = (list) => {
    list.cwDrawAll(); // older chunks are drawn when scrolled near: all of them, to compare
    const copy = list.cloneNode(true);
    for (const d of copy.querySelectorAll("[open]")) d.removeAttribute("open");
    for (const c of copy.querySelectorAll(".cw-chunk")) c.removeAttribute("style"); // a placeholder's height, once
    for (const d of copy.querySelectorAll("[aria-expanded]")) d.setAttribute("aria-expanded", "false");
    for (const s of copy.querySelectorAll("[data-started]")) s.textContent = "";
    return copy.innerHTML;
  };
  window.fresh = (items) => {
    const el = document.createElement("div");
    const cleanup = chat.render({ model: standIn({ ...state, transcript: items }), el });
    const html = window.html(el.querySelector(".cw-transcript"));
    cleanup();
    return html;
  };
}"""


def ev(seq: int, type_: str, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": 1000.0 + seq, "type": type_, **fields}


def tool(seq: int, mid: str, call: str, name: str, status: str, **kw: Any) -> dict[str, Any]:
    return ev(seq, "tool_call", message_id=mid, call_id=call, tool=name, status=status,
              input={"file_path": f"src/{call}.py"} if name == "Read" else {"command": f"make {call}"}, **kw)  # fmt: skip


ANSWER = "Done: **parser.py** skips blank lines.\n\n```python\nfor line in lines:\n    if not line.strip():\n        continue\n```\n"
SCRIPT: list[dict[str, Any]] = [
    ev(1, "user_message", message_id="m1", text="Fix the parser", author={"name": "Ada"}),
    ev(2, "assistant_text", message_id="m1", index=0, text="Looking at the **parser** first."),
    tool(3, "m1", "c1", "Read", "running"),
    tool(4, "m1", "c2", "Read", "running"),  # folds into c1's block: one group of two
    tool(5, "m1", "c1", "Read", "completed", output="x = 1\n", duration_ms=12),  # in place, inside the group
    ev(6, "user_message", message_id="m2", text="Then add a test", author={"name": "Ada"}),  # queued
    tool(7, "m1", "c3", "Bash", "running"),  # another tool: a block of its own after the prompt
    tool(8, "m1", "c2", "Read", "completed", output="y = 2\n", duration_ms=15),  # an earlier block, not the tail
    tool(9, "m1", "c3", "Bash", "completed", output="ok\n", duration_ms=800),
    ev(10, "assistant_text", message_id="m1", index=1, text=ANSWER),
    ev(
        11,
        "git",
        message_id="m1",
        branch="cloudws/t",
        sha="0123456789abc",
        pushed=True,
        committed=True,
        files=[{"path": "parser.py", "status": "modified", "additions": 3, "deletions": 1}],
        files_total=1,
    ),
    ev(12, "execution_complete", message_id="m1", success=True, cost_usd=0.0123, duration_ms=4200),
    tool(13, "m2", "c4", "Bash", "running"),  # m2 starts: its queued prompt, far back, is updated
    tool(14, "m2", "c5", "Bash", "running"),
    tool(15, "m2", "c6", "Read", "running"),
    ev(16, "execution_complete", message_id="m2", success=False, interrupted=True, duration_ms=900),  # ends c4..c6
]


def mount(page: Any) -> None:
    page.set_content("<body></body>")
    page.add_style_tag(content=(WIDGET / "chat.css").read_text())
    page.evaluate(MOUNT, [CHAT_JS, dict(BASE_STATE)])


def deliver(page: Any, items: list[dict[str, Any]]) -> set[str]:
    """Sends one upsert; returns the ids of the items chat.js read while handling it."""
    return set(
        page.evaluate(
            "(items) => { window.reads = {}; window.kernel({ type: 'upsert', items }); return Object.keys(window.reads); }",
            items,
        )
    )


def children(page: Any) -> int:
    """Marks the transcript's block elements as they are now; returns how many there are."""
    return page.evaluate(
        "() => { window.marked = [...document.querySelectorAll('#view-a .cw-chunk > *')]; return window.marked.length; }"
    )


def kept(page: Any) -> list[bool]:
    """Whether each marked element is still the same object at the same place."""
    return page.evaluate(
        "() => { const now = document.querySelectorAll('#view-a .cw-chunk > *'); return window.marked.map((el, i) => now[i] === el); }"
    )


def view_html(page: Any, view: str) -> str:
    return page.evaluate("(id) => window.html(document.querySelector(`#${id} .cw-transcript`))", view)


def test_upserts_draw_what_a_fresh_render_draws_and_appends_leave_earlier_blocks_alone(page, page_errors, shot) -> None:
    mount(page)
    t = Transcript()

    for event in SCRIPT:
        seq = event["seq"]
        before = children(page)
        changed = t.apply(event)
        read = deliver(page, changed)
        ids = {i["id"] for i in changed}
        assert view_html(page, "view-a") == page.evaluate("(items) => window.fresh(items)", t.items), f"after seq {seq}"
        if seq in (1, 2, 3, 6, 7, 10, 11, 12):
            # Appends: nothing before the tail block is read or re-created.
            assert read <= ids | tail_ids(t, ids), (seq, read)
            assert all(kept(page)[: before - 1]), seq
        if seq == 4:  # c2 folds into c1's block: that block is drawn again, nothing before it
            assert read <= {"t:c1", "t:c2"}, read
            assert (
                all(kept(page)[: before - 1])
                and page.evaluate("() => document.querySelector('#view-a .cw-group .cw-group-label').textContent")
                == "Read 2 files"
            )
        if seq == 5:  # an update inside the tail group: only that group
            assert read <= {"t:c1", "t:c2"}, read
            assert all(kept(page)[: before - 1])
        if seq in (8, 13):
            # An earlier block updated in place: that one block is drawn again, every other element stays.
            still = kept(page)
            target = {8: "Read 2 files", 13: "Ada"}[seq]
            redrawn = [i for i, same in enumerate(still) if not same]
            assert len(redrawn) == 1, (seq, still)
            assert target in page.evaluate(
                "(i) => document.querySelectorAll('#view-a .cw-chunk > *')[i].textContent", redrawn[0]
            )

    # The interrupt ended every running row of m2, the earlier Bash group's as well as the tail's.
    states = page.locator("#view-a .cw-tool .cw-state").all_text_contents()
    assert states.count("error") == 3 and "running" not in states, states
    # The model's own array is current (what a notebook saves), and a second view drawn now agrees.
    assert page.evaluate("() => JSON.parse(JSON.stringify(window.model.get('transcript')))") == json.loads(
        json.dumps(t.items)
    )
    page.evaluate("() => window.mountSecond()")
    assert view_html(page, "view-b") == view_html(page, "view-a")
    shot("incremental")
    assert not page_errors, page_errors


def tail_ids(t: Transcript, new_ids: set[str]) -> set[str]:
    """The ids of the block an append may regroup: the last block shown before it."""
    shown = [i for i in t.items if i["id"] not in new_ids]
    if not shown:
        return set()
    last = shown[-1]
    block = {last["id"]}
    for item in reversed(shown[:-1]):  # consecutive calls of the same tool for the same prompt fold
        if last["kind"] != "tool" or (item["kind"], item.get("tool"), item.get("message_id")) != (
            "tool",
            last["tool"],
            last["message_id"],
        ):
            break
        block.add(item["id"])
    return block


def test_an_open_row_stays_open_when_its_block_is_drawn_again_and_a_new_transcript_replaces_all(
    page, page_errors
) -> None:
    mount(page)
    t = Transcript()
    for event in SCRIPT[:4]:  # c1 and c2 running, folded into one group
        deliver(page, t.apply(event))
    page.locator("#view-a .cw-group > summary").click()
    page.locator('#view-a .cw-tool[data-id="t:c1"] > summary').press("Enter")  # the keyboard too
    deliver(page, t.apply(SCRIPT[4]))  # c1 completes: its group is drawn again
    assert page.locator("#view-a .cw-group").get_attribute("open") == ""
    assert page.locator('#view-a .cw-tool[data-id="t:c1"]').get_attribute("open") == ""
    assert page.locator('#view-a .cw-tool[data-id="t:c1"] > summary').get_attribute("aria-expanded") == "true"
    assert page.locator('#view-a .cw-tool[data-id="t:c1"] .cw-output').inner_text() == "x = 1\n"

    # Another session opened: the kernel empties the transcript, then its replay fills it.
    page.evaluate("() => window.model.set('transcript', [])")
    assert page.locator("#view-a .cw-transcript > *").all_inner_texts() == [
        "Ask for a change below. Claude works in a sandbox on cloudws/t of r; each prompt's work becomes a commit there."
    ]
    other = Transcript()
    other.apply(ev(1, "user_message", message_id="z1", text="Other work", author={"name": "Bo"}))
    page.evaluate("(items) => window.model.set('transcript', items)", other.items)
    assert view_html(page, "view-a") == page.evaluate("(items) => window.fresh(items)", other.items)
    # A whole transcript again (a reload's state), equal to what is shown: nothing is re-created.
    children(page)
    page.evaluate("(items) => window.model.set('transcript', items)", other.items)
    assert kept(page) == [True]
    # Upserts go on from the new transcript.
    deliver(page, other.apply(ev(2, "assistant_text", message_id="z1", index=0, text="Fine.")))
    assert view_html(page, "view-a") == page.evaluate("(items) => window.fresh(items)", other.items)
    assert not page_errors, page_errors


def test_a_long_transcript_across_chunks_and_a_regrouping_in_its_middle(page, page_errors) -> None:
    """Blocks sit in chunks of 64: appends fill and open chunks, and an earlier item whose grouping
    changes (here its prompt, so that it no longer folds with its neighbour) shifts every later block
    across chunk boundaries; each time the DOM is what a fresh render draws."""
    mount(page)
    t = Transcript()
    seq = 0
    for p in range(30):  # 5 blocks a prompt: 150 blocks, in three chunks
        mid = f"m{p}"
        for event in [
            ev(seq + 1, "user_message", message_id=mid, text=f"Prompt {p}", author={"name": "Ada"}),
            tool(seq + 2, mid, f"r{p}a", "Read", "completed", output="a\n"),
            tool(seq + 3, mid, f"r{p}b", "Read", "completed", output="b\n"),
            tool(seq + 4, mid, f"b{p}", "Bash", "completed", output="ok\n"),
            ev(seq + 5, "assistant_text", message_id=mid, index=0, text=f"Done {p}"),
            ev(seq + 6, "execution_complete", message_id=mid, success=True, duration_ms=10),
        ]:
            deliver(page, t.apply(event))
        seq += 6
    assert page.locator("#view-a .cw-chunk").count() == 3
    assert view_html(page, "view-a") == page.evaluate("(items) => window.fresh(items)", t.items)
    # r3b no longer belongs to m3's group: the group splits, and every block after it moves by one.
    moved = {**t.get("t:r3b"), "message_id": "elsewhere"}
    deliver(page, [moved])
    items = [moved if i["id"] == "t:r3b" else i for i in t.items]
    assert view_html(page, "view-a") == page.evaluate("(items) => window.fresh(items)", items)
    assert [page.locator("#view-a .cw-chunk").nth(k).locator("> *").count() for k in range(3)] == [64, 64, 23]
    # And back: the two fold again.
    deliver(page, [t.get("t:r3b")])
    assert view_html(page, "view-a") == page.evaluate("(items) => window.fresh(items)", t.items)
    assert not page_errors, page_errors


def test_a_long_transcript_opens_at_its_end_and_draws_older_chunks_when_scrolled_near(page, page_errors) -> None:
    """A reload of a long session: only the last two chunks are built at once; the first one is a
    placeholder until the list is scrolled up to it, then it holds what a full render shows."""
    t = Transcript()
    for p in range(60):  # 3 blocks a prompt: 180 blocks, three chunks
        mid = f"m{p}"
        t.apply(ev(3 * p + 1, "user_message", message_id=mid, text=f"Prompt {p}", author={"name": "Ada"}))
        t.apply(ev(3 * p + 2, "assistant_text", message_id=mid, index=0, text=f"Answer {p}"))
        t.apply(ev(3 * p + 3, "execution_complete", message_id=mid, success=True, duration_ms=10))
    page.set_content("<body></body>")
    page.add_style_tag(content=(WIDGET / "chat.css").read_text())
    page.evaluate(MOUNT, [CHAT_JS, {**BASE_STATE, "transcript": t.items}])
    chunks = page.locator("#view-a .cw-chunk")
    assert [chunks.nth(k).locator("> *").count() for k in range(3)] == [0, 64, 52]
    # The placeholder takes the room its blocks will: the scrollbar is right, and scrolling up
    # does not reach it (and draw it) at once.
    drawn, wanted = chunks.first.evaluate("(c) => [c.getBoundingClientRect().height, parseFloat(c.style.height)]")
    assert wanted > 0 and abs(drawn - wanted) < 1, (drawn, wanted)
    assert "Prompt 59" in page.locator("#view-a .cw-chunk").last.inner_text()  # scrolled to the end
    page.evaluate("() => { document.querySelector('#view-a .cw-transcript').scrollTop = 0; }")
    expect(chunks.first.locator("> *")).to_have_count(64)
    assert chunks.first.evaluate("(c) => c.style.height") == ""  # no longer a placeholder
    assert view_html(page, "view-a") == page.evaluate("(items) => window.fresh(items)", t.items)
    assert not page_errors, page_errors
