"""The review as chat.js draws it, in headless Chromium: the widget's real front end over a
stand-in model (no JupyterLab), fed what transcript.py and review.py make. Cheap enough to try
every hostile value; test_browser_review.py drives the same through a real server and JupyterLab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab_helpers import wait_until
from playwright.sync_api import expect

from jupyter_cloudws.widget.review import file_view
from jupyter_cloudws.widget.transcript import Transcript

WIDGET = Path(__file__).resolve().parents[2] / "jupyter_cloudws" / "widget"
CHAT_JS = (WIDGET / "chat.js").read_text()
HOSTILE_PATH = '<img src=x onerror="window.__pwned = 1">.py'
PY_DIFF = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-old = 1\n+<script>window.__pwned = 2</script>\n"

# The widget in #root over a model holding ``state``: ``window.sent`` collects what it sends to
# the kernel, ``window.kernel(msg)`` delivers a custom message, ``window.setTrait(k, v)`` a change.
MOUNT = """async ([source, state]) => {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const chat = (await import(url)).default;
  const handlers = {};
  window.sent = [];
  const model = {
    get: (k) => state[k], set: (k, v) => { state[k] = v; (handlers[`change:${k}`] || []).forEach((f) => f()); },
    send: (m) => window.sent.push(m), off: () => {},
    on: (name, fn) => { (handlers[name] = handlers[name] || []).push(fn); },
  };
  window.kernel = (msg) => (handlers["msg:custom"] || []).forEach((f) => f(msg));
  window.setTrait = (k, v) => model.set(k, v);
  chat.render({ model, el: document.getElementById("root") });
}"""


def mount(page: Any, state: dict[str, Any]) -> None:
    page.set_content('<div id="root"></div>')
    page.add_style_tag(content=(WIDGET / "chat.css").read_text())
    base = {"session": {"id": "s1", "title": "T", "branch": "cloudws/t", "repo": "r"}, "view": "chat",
            "transcript": [], "connection": {}, "sandbox_status": "ready", "working": False,
            "pull_request": {}, "changes_total": {}, "pr_form": {}, "pr_poll_interval_s": 60}  # fmt: skip
    page.evaluate(MOUNT, [CHAT_JS, {**base, **state}])


def sent(page: Any, type_: str, count: int | None = None) -> list[dict[str, Any]]:
    """What the widget sent of this type; with ``count``, once it has sent that many (a
    ``<details>`` says it opened in a task of its own, after the click)."""

    def of_type() -> list[dict[str, Any]]:
        return [m for m in page.evaluate("window.sent") if m["type"] == type_]

    if count is not None:
        wait_until(lambda: len(of_type()) >= count, 10, f"{count} {type_} messages")
    return of_type()


def test_a_prompts_files_open_to_their_diffs_and_hostile_values_stay_text(page, page_errors, shot) -> None:
    t = Transcript()
    files = [{"path": HOSTILE_PATH, "status": "added", "additions": 1, "deletions": 0},
             {"path": "nb.ipynb", "status": "modified", "additions": 2, "deletions": 1},
             {"path": "c.py", "status": "deleted", "additions": 0, "deletions": 3}]  # fmt: skip
    t.apply({"seq": 1, "type": "git", "message_id": "m1", "branch": "cloudws/t", "sha": "abcdef1234567",
             "pushed": True, "committed": True, "files": files, "files_total": 4})  # fmt: skip
    mount(page, {"transcript": t.items})
    changes = page.locator(".cw-git .cw-changes")
    assert changes.locator("summary").first.inner_text() == "4 files changed +3 −4"
    changes.locator("summary").first.click()
    assert page.locator(".cw-git .cw-file-path").all_inner_texts() == [HOSTILE_PATH, "nb.ipynb", "c.py"]
    assert page.locator(".cw-file-more").inner_text() == "and 1 more"

    page.locator(".cw-git .cw-file summary").first.click()
    expect(page.locator(".cw-diff-loading")).to_have_text("Loading the diff…")
    assert sent(page, "diff", 1) == [{"type": "diff", "scope": "m1", "path": HOSTILE_PATH}]
    view = file_view({"path": HOSTILE_PATH, "status": "added", "additions": 1, "deletions": 0, "diff": PY_DIFF,
                      "diff_truncated": True})  # fmt: skip
    page.evaluate("(m) => window.kernel(m)", {"type": "diff", "scope": "m1", "path": HOSTILE_PATH, "file": view})
    diff = page.locator(".cw-git .cw-diff")
    expect(diff).to_be_visible()
    assert "<script>window.__pwned = 2</script>" in diff.inner_text()
    assert diff.locator(".gi").last.inner_text() == "+<script>window.__pwned = 2</script>"
    assert diff.locator(".gd").last.inner_text() == "-old = 1"
    assert page.locator(".cw-diff-marker").inner_text().startswith("✂ This diff is too large")

    page.locator(".cw-git .cw-file summary").nth(1).click()
    sent(page, "diff", 2)
    cells = [{"index": 2, "cell_type": "code", "status": "modified", "source_diff": "@@ -1 +1 @@\n-x = 1\n+x = 2\n",
              "outputs": "1 output → 2 outputs (image/png)"}]  # fmt: skip
    nb = file_view({"path": "nb.ipynb", "status": "modified", "notebook": True, "diff": "…", "cells": cells})
    page.evaluate("(m) => window.kernel(m)", {"type": "diff", "scope": "m1", "path": "nb.ipynb", "file": nb})
    expect(page.locator(".cw-cell-head")).to_have_text("cell 2 · code · modified")
    assert page.locator(".cw-cell .gi").inner_text() == "+x = 2"
    assert page.locator(".cw-cell-outputs").inner_text() == "outputs: 1 output → 2 outputs (image/png)"
    shot("diffs")
    assert page.locator("#root img, #root script").count() == 0 and page.evaluate("window.__pwned") is None
    # Folded and opened again: drawn from what this view loaded, not asked twice.
    page.locator(".cw-git .cw-file summary").first.click()
    page.locator(".cw-git .cw-file summary").first.click()
    page.locator(".cw-git .cw-file summary").nth(2).click()  # its request comes after the reopening's
    assert [m["path"] for m in sent(page, "diff", 3)] == [HOSTILE_PATH, "nb.ipynb", "c.py"]
    assert not page_errors, page_errors


def test_the_session_total_the_badge_and_the_pull_request_form(page, page_errors, shot) -> None:
    total = {"state": "ready", "files_total": 2, "additions": 5, "deletions": 2, "truncated": False,
             "files": [{"path": "a.py", "status": "modified", "additions": 5, "deletions": 2},
                       {"path": "logo.png", "status": "added", "additions": None, "deletions": None}]}  # fmt: skip
    mount(page, {"changes_total": total})
    line = page.locator(".cw-session-changes summary").first
    assert line.inner_text() == "Session: 2 files changed +5 −2"
    line.click()
    assert page.locator(".cw-session-changes .cw-file-stat").all_inner_texts() == ["+5 −2", "binary"]
    # A file the server could not diff says why, and is asked for again when opened again.
    row = page.locator(".cw-session-changes .cw-file").first
    row.locator("summary").click()
    sent(page, "diff", 1)
    error = "commit abc never reached the repository (not_pushed, HTTP 409)"
    page.evaluate("(m) => window.kernel(m)", {"type": "diff", "scope": "", "path": "a.py", "error": error})
    expect(row.locator(".cw-diff-error")).to_have_text(f"Could not load the diff: {error}")
    row.locator("summary").click()
    expect(row).not_to_have_attribute("open", "")
    row.locator("summary").click()
    assert sent(page, "diff", 2) == [{"type": "diff", "scope": "", "path": "a.py"}] * 2

    # No pull request yet: the action opens the form, drafted by the kernel, edited, sent.
    assert page.locator(".cw-pr").count() == 0
    page.get_by_role("button", name="Pull request").click()
    assert sent(page, "pr_draft", 1) == [{"type": "pr_draft"}]
    page.evaluate("() => window.setTrait('pr_form', {state: 'loading'})")
    assert page.locator(".cw-pr-send").is_disabled()
    page.evaluate("() => window.setTrait('pr_form', {state: 'ready', title: 'Drafted', body: 'Body', draft: false})")
    assert page.locator(".cw-pr-title").input_value() == "Drafted"
    page.locator(".cw-pr-title").fill("Mine")
    page.locator(".cw-pr-draft-box").check()
    page.locator(".cw-pr-send").click()
    assert sent(page, "pr_create", 1) == [{"type": "pr_create", "title": "Mine", "body": "Body", "draft": True}]
    # Refused: the message shows and what was typed stays.
    page.evaluate("""() => window.setTrait('pr_form', {state: 'error', title: 'Mine', body: 'Body', draft: true,
                                                        error: '<b>No permission</b> (HTTP 403)'})""")
    assert page.locator(".cw-pr-status.cw-pr-error").inner_text() == "<b>No permission</b> (HTTP 403)"
    assert page.locator(".cw-pr-title").input_value() == "Mine"
    shot("pr-form")

    page.evaluate("""() => window.setTrait('pull_request', {number: 3, state: 'open', title: '<img src=x>',
                                                             url: 'https://github.test/o/r/pull/3'})""")
    badge = page.locator("a.cw-pr")
    assert badge.inner_text() == "#3 open" and badge.get_attribute("href") == "https://github.test/o/r/pull/3"
    assert badge.get_attribute("title") == "<img src=x>" and badge.get_attribute("rel") == "noopener noreferrer"
    assert page.get_by_role("button", name="Pull request").count() == 0
    page.evaluate("() => window.setTrait('pull_request', {number: 3, state: 'merged', title: 't', url: 'javascript:alert(1)'})")
    assert page.locator(".cw-pr-merged").inner_text() == "#3 merged"
    assert page.locator("a.cw-pr").count() == 0, "a link only to http(s)"
    # A merged or closed pull request is settled: the branch may get a new one.
    assert page.get_by_role("button", name="Pull request").count() == 1
    page.evaluate("() => window.setTrait('pull_request', {number: 3, state: 'draft', title: 't', url: ''})")
    assert page.get_by_role("button", name="Pull request").count() == 0
    page.evaluate("() => window.setTrait('changes_total', {state: 'error', error: 'git could not fetch <b>x</b>'})")
    assert page.locator(".cw-session-changes").inner_text() == "Changes unavailable: git could not fetch <b>x</b>"
    assert not page_errors, page_errors
