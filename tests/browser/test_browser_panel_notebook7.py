"""The Claude Code side panel in Notebook 7: the same lab extension, in the notebook view's right
sidebar, opened from the View menu; it lists and opens a session and inserts its chat cell
into the notebook on the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_helpers import wait_until, write_notebook
from panel_helpers import PANEL_ID, SidePanel, wait_restored
from playwright.sync_api import expect
from support import make_bare_repo


@pytest.fixture(scope="module")
def lab_app() -> str:
    return "notebook"


@pytest.fixture(scope="module")
def repo(lab) -> Path:
    return make_bare_repo(lab.root, "nb7-app")


def test_the_panel_in_notebook_7s_right_sidebar(lab, repo, page, page_errors, shot):
    with lab.client() as client:
        sid = client.post("/sessions", json={"repo": str(repo), "title": "In Notebook 7"}).json()["id"]
    path = write_notebook(lab.work_dir, "nb7", cells=["y = 2"])
    page.goto(f"{lab.url}notebooks/{path}?token={lab.token}")
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells.first).to_be_visible(timeout=60_000)
    wait_restored(page)

    panel = SidePanel(page)
    # Notebook 7's way to a side panel: View > Right Sidebar > Show Claude Code.
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    page.locator(".lm-Menu-itemLabel", has_text="Right Sidebar").hover()
    page.locator(".lm-Menu-itemLabel", has_text="Show Claude Code").click()
    right = page.locator("#jp-right-stack")
    expect(right.locator(f"#{PANEL_ID}")).to_be_visible()
    expect(right.locator(".cloudws-chat")).to_be_visible()
    # The notebook stays on the page beside it.
    expect(cells.first).to_be_visible()

    panel.open_session("In Notebook 7")
    shot("panel")
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
