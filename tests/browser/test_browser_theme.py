"""The chat reads well in JupyterLab's dark and light themes: chat.js over a stand-in model (no
JupyterLab), styled by chat.css and the Pygments CSS under JupyterLab's own theme stylesheet (its
CSS variables), and every text checked for its contrast against the background it is drawn on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jupyterlab
import pytest

from jupyter_cloudws.widget.markdown import PYGMENTS_CSS
from jupyter_cloudws.widget.transcript import Transcript

WIDGET = Path(__file__).resolve().parents[2] / "jupyter_cloudws" / "widget"
CHAT_JS = (WIDGET / "chat.js").read_text()
THEMES = Path(jupyterlab.__file__).parent / "themes" / "@jupyterlab"
TEXT_CONTRAST = 4.5  # WCAG AA for body text
CODE_CONTRAST = 3.0  # syntax colours: JupyterLab's own editor palette meets this on its background

MOUNT = """async ([source, state, light]) => {
  document.body.dataset.jpThemeLight = light ? "true" : "false";
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const chat = (await import(url)).default;
  const handlers = {};
  const model = {
    get: (k) => state[k], set: (k, v) => { state[k] = v; (handlers[`change:${k}`] || []).forEach((f) => f()); },
    send: () => {}, save_changes: () => {}, off: () => {},
    on: (name, fn) => { (handlers[name] = handlers[name] || []).push(fn); },
  };
  chat.initialize({ model });
  chat.render({ model, el: document.getElementById("root") });
}"""

# The contrast of each element's text with what is under it: its own background, or its
# ancestors', composited down to the page (WCAG relative luminance).
CONTRASTS = """(selectors) => {
  const parse = (css) => {
    const nums = css.match(/[\\d.]+/g).map(Number);
    if (css.startsWith("color(")) return { r: nums[0] * 255, g: nums[1] * 255, b: nums[2] * 255, a: nums.length > 3 ? nums[3] : 1 };
    return { r: nums[0], g: nums[1], b: nums[2], a: nums.length > 3 ? nums[3] : 1 };
  };
  const over = (top, under) => ({ r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a), a: 1 });
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.a > 0) layers.push(c);
      if (c.a >= 1) break;
    }
    return layers.reverse().reduce((under, top) => over(top, under), { r: 255, g: 255, b: 255, a: 1 });
  };
  const lum = (c) => {
    const ch = [c.r, c.g, c.b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
  };
  const out = {};
  for (const sel of selectors) {
    const els = [...document.querySelectorAll(sel)];
    if (!els.length) { out[sel] = null; continue; }
    out[sel] = Math.min(...els.map((el) => {
      const bg = background(el);
      const fg = over(parse(getComputedStyle(el).color), bg);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      return (a + 0.05) / (b + 0.05);
    }));
  }
  return out;
}"""

TEXT = [".cw-title", ".cw-user-text", ".cw-who", ".cw-assistant p", ".cw-assistant td", ".cw-tool-name",
        ".cw-banner", ".cw-btn", ".cw-input-text", ".cw-result", ".cw-git > div"]  # fmt: skip
CODE = [".cw-assistant .highlight .k", ".cw-assistant .highlight .nf", ".cw-assistant .highlight .s1",
        ".cw-assistant .highlight .c1", ".cw-assistant .highlight .mi", ".cw-assistant .highlight .nb"]  # fmt: skip


EDITOR_COLOURS = {"k": "keyword", "nf": "def", "s1": "string", "c1": "comment", "mi": "number", "nb": "builtin"}
SAME_AS_EDITOR = """(tokens) => {
  const probe = document.createElement("span");
  document.body.append(probe);
  const out = {};
  for (const [token, name] of Object.entries(tokens)) {
    probe.style.color = `var(--jp-mirror-editor-${name}-color)`;
    out[token] = getComputedStyle(document.querySelector(`.cw-assistant .highlight .${token}`)).color === getComputedStyle(probe).color;
  }
  probe.remove();
  return out;
}"""


def transcript() -> list[dict[str, Any]]:
    t = Transcript()
    answer = (
        "Added **greet** to `hello.py`:\n\n| file | change |\n|---|---|\n| hello.py | new |\n\n"
        "```python\ndef greet(name):  # say hello\n    print('hi', name, len(name) + 1)\n```\n"
    )
    for event in [
        {"seq": 1, "type": "user_message", "message_id": "m1", "text": "Add a greeting", "author": {"name": "Ada"}},
        {"seq": 2, "type": "tool_call", "message_id": "m1", "call_id": "c1", "tool": "Bash", "status": "completed",
         "input": {"command": "pytest -q"}, "output": "1 passed", "duration_ms": 800},
        {"seq": 3, "type": "assistant_text", "message_id": "m1", "index": 0, "text": answer},
        {"seq": 4, "type": "git", "message_id": "m1", "branch": "cloudws/t", "sha": "0123456789", "pushed": True,
         "committed": True},
        {"seq": 5, "type": "execution_complete", "message_id": "m1", "success": True, "duration_ms": 4200},
    ]:  # fmt: skip
        t.apply(event)
    return t.items


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_every_text_reads_well_in_the_theme(page, page_errors, shot, theme: str) -> None:
    page.set_content('<!DOCTYPE html><html><body><div id="root"></div></body></html>')  # standards mode, as JupyterLab
    page.add_style_tag(content=(THEMES / f"theme-{theme}-extension" / "index.css").read_text())
    page.add_style_tag(content="body { background: var(--jp-layout-color1); margin: 0; } #root { width: 420px; }")
    page.add_style_tag(content=(WIDGET / "chat.css").read_text() + "\n" + PYGMENTS_CSS)
    state = {"session": {"id": "s1", "title": "Greeting", "branch": "cloudws/t", "repo": "r"}, "view": "chat",
             "transcript": transcript(), "connection": {}, "sandbox_status": "ready", "working": False,
             "error": "The hub refused the prompt", "pull_request": {}, "changes_total": {}, "pr_form": {},
             "pr_poll_interval_s": 3600}  # fmt: skip
    page.evaluate(MOUNT, [CHAT_JS, state, theme == "light"])
    page.locator(".cw-input-text").fill("Now add a test")
    shot(theme)
    contrasts = page.evaluate(CONTRASTS, TEXT + CODE)
    assert None not in contrasts.values(), contrasts  # every selector drew something
    poor = {sel: round(c, 2) for sel, c in contrasts.items() if c < (CODE_CONTRAST if sel in CODE else TEXT_CONTRAST)}
    assert not poor, poor
    # Code is coloured like JupyterLab's own editor in this theme, from its --jp-mirror-editor-* variables.
    assert page.evaluate(SAME_AS_EDITOR, EDITOR_COLOURS) == {token: True for token in EDITOR_COLOURS}
    assert not page_errors, page_errors
