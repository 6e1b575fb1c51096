"""The chat's spawn progress block as chat.js draws it, in headless Chromium: the widget's real
front end over a stand-in model (no JupyterLab), fed the items transcript.py makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_cloudws.widget.transcript import Transcript

WIDGET = Path(__file__).resolve().parents[2] / "jupyter_cloudws" / "widget"
CHAT_JS = (WIDGET / "chat.js").read_text()
HOSTILE = '<img src=x onerror="window.__pwned = 1">'

# Renders the widget into #root with a model holding ``state``; ``window.setItems`` replaces the
# transcript as the kernel's upserts would.
MOUNT = """async ([source, state]) => {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const chat = (await import(url)).default;
  const handlers = {};
  const model = {
    get: (k) => state[k], set: (k, v) => { state[k] = v; }, send: () => {},
    on: (name, fn) => { (handlers[name] = handlers[name] || []).push(fn); },
  };
  window.setItems = (items) => { state.transcript = items; (handlers["change:transcript"] || []).forEach((f) => f()); };
  chat.render({ model, el: document.getElementById("root") });
}"""


def mount(page: Any, items: list[dict[str, Any]]) -> None:
    page.set_content('<div id="root"></div>')
    page.add_style_tag(content=(WIDGET / "chat.css").read_text())
    state = {"session": {"id": "s1", "title": "T", "branch": "cloudws/t", "repo": "r"}, "view": "chat",
             "transcript": items, "connection": {}, "sandbox_status": "spawning", "working": False}  # fmt: skip
    page.evaluate(MOUNT, [CHAT_JS, state])


def ev(seq: int, type_: str, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": 1000.0 + seq, "type": type_, **fields}


def step(seq: int, name: str, state: str, elapsed_ms: int = 0, **kw: Any) -> dict[str, Any]:
    return ev(seq, "sandbox_progress", step=name, state=state, elapsed_ms=elapsed_ms, **kw)


def test_a_spawn_lists_its_steps_and_folds_to_a_line_when_ready(page, page_errors, shot) -> None:
    t = Transcript()
    for event in [step(1, "clone", "running"), step(2, "clone", "done", 800),
                  step(3, "setup", "running", detail="running .cloudws/setup.sh"),
                  step(4, "setup", "running", 300, output=f"installing\n{HOSTILE}\n")]:  # fmt: skip
        t.apply(event)
    mount(page, t.items)
    clone = page.locator('.cw-step[data-step="clone"] span')
    assert clone.all_inner_texts() == ["clone", "✓", "0.8 s"]
    assert page.locator('.cw-step[data-step="setup"] .cw-spinner').count() == 1, "a running step spins"
    page.locator(".cw-step-output summary").click()
    assert page.locator(".cw-step-output pre").inner_text() == f"installing\n{HOSTILE}\n"
    assert page.locator("#root img").count() == 0 and page.evaluate("window.__pwned") is None
    shot("running")

    for event in [step(5, "setup", "done", 1200, detail="exit code 0"), step(6, "agent", "running"),
                  step(7, "agent", "done", 200), ev(8, "sandbox_status", status="ready")]:  # fmt: skip
        t.apply(event)
    page.evaluate("(items) => window.setItems(items)", t.items)
    details = page.locator(".cw-progress details").first
    assert details.get_attribute("open") is None, "folded once ready"
    assert page.locator(".cw-progress-summary").inner_text() == (
        "Sandbox ready in 2.2 s · clone ✓ 0.8 s · setup ✓ 1.2 s · agent ✓ 0.2 s"
    )
    shot("ready")
    assert not page_errors, page_errors


def test_a_failed_setup_shows_its_tail_as_text_once_the_sandbox_is_ready(page, page_errors, shot) -> None:
    t = Transcript()
    for event in [step(1, "clone", "done", 500), step(2, "setup", "running", output="step 1\n"),
                  step(3, "setup", "failed", 900, detail=f"exit code 3 {HOSTILE}", output=f"step 1\n{HOSTILE}"),
                  ev(4, "sandbox_status", status="ready")]:  # fmt: skip
        t.apply(event)
    mount(page, t.items)
    assert page.locator(".cw-progress details").first.get_attribute("open") is not None, "kept open: a step failed"
    assert page.locator(".cw-step-tail").inner_text() == f"step 1\n{HOSTILE}"
    assert page.locator('.cw-step[data-step="setup"] .cw-step-mark').inner_text() == "✗"
    assert HOSTILE in page.locator(".cw-step-detail").inner_text()
    assert page.locator("#root img").count() == 0 and page.evaluate("window.__pwned") is None
    shot("failed-setup")
    assert not page_errors, page_errors
