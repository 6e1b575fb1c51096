"""The Claude Code side panel in Notebook 7: the same lab extension, in the notebook view's right
sidebar, opened from the View menu; it lists and opens a session, sends a prompt with Ctrl+Enter
(a tool row and rendered markdown stream in, the agent's HTML stays text), comes back after a
reload, and inserts its chat cell into the notebook on the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_helpers import wait_until, write_notebook
from panel_helpers import PANEL_ID, SidePanel, wait_restored
from playwright.sync_api import expect
from support import make_bare_repo

from jupyter_cloudws.testing.fake_anthropic import text, tool_use, turn

ANSWER = """Wrote **notes.txt**.

<img src=x onerror="window.__pwned = 1"> <script>window.__pwned = 2</script>"""


@pytest.fixture(scope="module")
def lab_app() -> str:
    return "notebook"


@pytest.fixture(scope="module")
def repo(lab) -> Path:
    return make_bare_repo(lab.root, "nb7-app")


@pytest.fixture(scope="module", autouse=True)
def script(lab_fake_anthropic):
    lab_fake_anthropic.on("write the notes", tool_use("Bash", {"command": "echo notes > notes.txt"}),
                          turn(text(ANSWER), delay_s=0.01))  # fmt: skip


def show_panel(page) -> None:
    """Notebook 7's way to a side panel: View > Right Sidebar > Show Claude Code."""
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    page.locator(".lm-Menu-itemLabel", has_text="Right Sidebar").hover()
    page.locator(".lm-Menu-itemLabel", has_text="Show Claude Code").click()


def test_the_panel_in_notebook_7s_right_sidebar(lab, repo, page, page_errors, shot):
    with lab.client() as client:
        sid = client.post("/sessions", json={"repo": str(repo), "title": "In Notebook 7"}).json()["id"]
    path = write_notebook(lab.work_dir, "nb7", cells=["y = 2"])
    page.goto(f"{lab.url}notebooks/{path}?token={lab.token}")
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells.first).to_be_visible(timeout=60_000)
    wait_restored(page)

    panel = SidePanel(page)
    show_panel(page)
    right = page.locator("#jp-right-stack")
    expect(right.locator(f"#{PANEL_ID}")).to_be_visible()
    expect(right.locator(".cloudws-chat")).to_be_visible()
    # The notebook stays on the page beside it.
    expect(cells.first).to_be_visible()

    panel.open_session("In Notebook 7")
    panel.send("Please write the notes")
    expect(panel.chat.locator(".cw-tool").first.locator(".cw-summary")).to_contain_text("echo notes > notes.txt",
                                                                                         timeout=60_000)  # fmt: skip
    expect(panel.chat.locator(".cw-result")).to_contain_text("Done", timeout=60_000)
    answer = panel.chat.locator(".cw-assistant")
    expect(answer.locator("strong")).to_have_text("notes.txt")
    expect(answer).to_contain_text("<script>window.__pwned = 2</script>")
    assert answer.locator("img, script").count() == 0 and page.evaluate("() => window.__pwned") is None
    shot("panel")

    # After a reload the panel opens on the same session, its transcript whole.
    rows = panel.chat.locator(".cw-block").count()
    page.reload()
    expect(cells.first).to_be_visible(timeout=60_000)
    wait_restored(page)
    if not right.locator(f"#{PANEL_ID}").is_visible():
        show_panel(page)
    expect(panel.chat.locator(".cw-title")).to_have_text("In Notebook 7", timeout=30_000)
    expect(panel.chat.locator(".cw-result")).to_contain_text("Done", timeout=30_000)
    wait_until(lambda: panel.chat.locator(".cw-block").count() == rows, 30, f"{rows} blocks after the reload")
    shot("after-reload")
    cells.first.locator(".cm-content").click()
    count = cells.count()
    panel.insert_button.click()
    wait_until(lambda: cells.count() == count + 1, 10, "the inserted cell")
    source = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets[1].model.sharedModel.getSource()")
    assert source == f"%load_ext jupyter_cloudws\n%cloudws use {sid}\n%cloudws chat"
    shot("inserted")
    # Notebook 7.6 itself throws one error while it loads its settings here ("Cannot read properties
    # of undefined (reading 'schema')"), with or without this extension installed (checked).
    assert [e for e in page_errors if "(reading 'schema')" not in e] == [], page_errors
