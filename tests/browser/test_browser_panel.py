"""The Claude Code side panel (the lab extension, src/) in a real JupyterLab, with no kernel: a tab
in the right sidebar, the palette command and the launcher card; a session made over REST is
listed, opened, prompted with Ctrl+Enter, streams tool rows and markdown, stops, and comes back
after a reload; the agent's HTML stays text; dark theme and a 300 px sidebar keep the prompt box
whole. Then, with a notebook: "Insert in notebook" and the MIME output that opens the panel.

Real JupyterLab, headless Chromium, the real Claude Code CLI against the fake API.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lab_helpers import VIEWPORT, wait_until, write_notebook
from panel_helpers import KernelApiLog, SidePanel, assert_inside, set_right_sidebar_width, wait_restored
from playwright.sync_api import expect
from support import make_bare_repo

from jupyter_cloudws.testing.fake_anthropic import text, tool_use, turn

ANSWER = """Created **greeting.txt**.

| file | lines |
|------|-------|
| greeting.txt | 1 |

<img src=x onerror="window.__pwned = 1"> <script>window.__pwned = 2</script>"""


@pytest.fixture(scope="module")
def repo(lab) -> Path:
    return make_bare_repo(lab.root, "panel-app")


@pytest.fixture(scope="module", autouse=True)
def script(lab_fake_anthropic):
    lab_fake_anthropic.on(
        "greeting file",
        tool_use("Bash", {"command": "echo hello > greeting.txt && cat greeting.txt"}),
        turn(text(ANSWER), delay_s=0.01),
    )
    lab_fake_anthropic.on("take your time", tool_use("Bash", {"command": "echo busy && sleep 60 && echo done",
                                                               "timeout": 120000}), text("Finished."))  # fmt: skip


def new_session(lab, repo: Path, title: str) -> str:
    with lab.client() as client:
        made = client.post("/sessions", json={"repo": str(repo), "title": title})
        assert made.status_code in (200, 201), made.text
        return made.json()["id"]


def test_the_panel_drives_a_session_with_no_kernel(lab, lab_page, repo, page, page_errors, shot):
    kernels = KernelApiLog(page)
    launcher = lab_page.open_launcher()
    panel = SidePanel(page)
    expect(launcher.locator(".jp-LauncherCard", has_text="New Claude Code session")).to_be_visible()
    expect(panel.tab()).to_have_attribute("title", "Claude Code")
    panel.tab().click()
    expect(panel.chat).to_be_visible()

    # A session made over REST shows up in the panel's list; open it and prompt it.
    new_session(lab, repo, "Made over REST")
    panel.open_session("Made over REST")
    panel.send("Please make a greeting file")
    expect(panel.chat.locator(".cw-user")).to_contain_text("Please make a greeting file", timeout=30_000)
    tool = panel.chat.locator(".cw-tool").first
    expect(tool.locator(".cw-summary")).to_contain_text("echo hello > greeting.txt", timeout=60_000)
    expect(panel.chat.locator(".cw-result")).to_contain_text("Done", timeout=60_000)
    answer = panel.chat.locator(".cw-assistant")
    expect(answer.locator("strong")).to_have_text("greeting.txt")
    expect(answer.locator("table td").first).to_have_text("greeting.txt")
    # The agent's HTML is text: no element made from it, nothing run.
    expect(answer).to_contain_text('<img src=x onerror="window.__pwned = 1">')
    expect(answer).to_contain_text("<script>window.__pwned = 2</script>")
    assert answer.locator("img, script").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    shot("light")

    # Dark theme, then a 300 px and a 450 px sidebar: the prompt box and the header stay whole.
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false", timeout=30_000)
    shot("dark")
    set_right_sidebar_width(page, 300)
    assert_inside(panel.composer, panel.root, VIEWPORT)
    assert_inside(panel.prompt, panel.root, VIEWPORT)
    assert_inside(panel.chat.locator(".cw-header"), panel.root, VIEWPORT)
    shot("dark-300px")
    set_right_sidebar_width(page, 450)
    assert_inside(panel.composer, panel.root, VIEWPORT)
    assert_inside(panel.chat.locator(".cw-header"), panel.root, VIEWPORT)
    shot("dark-450px")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "true", timeout=30_000)

    # A reload brings the panel back on the same session with its transcript.
    rows = panel.chat.locator(".cw-block").count()
    page.reload()
    expect(panel.tab()).to_be_visible(timeout=60_000)
    wait_restored(page)  # the layout as it was, if saved
    if not panel.root.is_visible():
        panel.tab().click()
    expect(panel.chat.locator(".cw-title")).to_have_text("Made over REST", timeout=30_000)
    expect(panel.chat.locator(".cw-result")).to_contain_text("Done", timeout=30_000)
    wait_until(lambda: panel.chat.locator(".cw-block").count() == rows, 30, f"{rows} blocks after the reload")
    expect(panel.chat.locator(".cw-assistant table")).to_be_visible()
    shot("after-reload")

    # No kernel, ever: nothing but GETs, and every kernel list was empty.
    assert kernels.writes() == [], kernels.requests
    listed = kernels.kernel_lists
    assert listed and all(body == [] for body in listed), listed
    with lab.client() as client:
        assert client.get(f"{lab.url}api/kernels").json() == []
    assert not page_errors, page_errors


def test_stop_in_the_panel_ends_a_long_command(lab, lab_page, repo, page, page_errors, shot):
    lab_page.open_launcher()
    panel = SidePanel(page)
    panel.run_command("New Claude Code session")  # the palette entry opens the panel on the form
    expect(panel.chat.locator(".cw-repo")).to_be_visible(timeout=30_000)
    sid = new_session(lab, repo, "Stoppable")
    panel.open_session("Stoppable")
    panel.send("Please take your time")
    running = panel.chat.locator(".cw-tool.cw-running")
    expect(running).to_be_visible(timeout=60_000)
    wait_until(lambda: "sleep 60" in running.locator(".cw-summary").inner_text(), 10, "the long command")
    panel.chat.locator(".cw-stop").click()
    expect(panel.chat.locator(".cw-result")).to_contain_text("Stopped", timeout=20_000)
    expect(running).to_have_count(0)
    shot("stopped")

    # Archived, the session is forgotten: a reload starts on the session list, not on it.
    remembered = "() => Object.entries(localStorage).filter(([k]) => k.startsWith('jupyter-cloudws')).map(([, v]) => v)"
    assert page.evaluate(remembered) == [sid]
    panel.chat.locator("button", has_text="Archive").click()
    expect(panel.chat.locator(".cw-search")).to_be_visible(timeout=30_000)
    wait_until(lambda: page.evaluate(remembered) == [], 10, "the archived session forgotten")
    page.reload()
    expect(panel.tab()).to_be_visible(timeout=60_000)
    wait_restored(page)
    if not panel.root.is_visible():
        panel.tab().click()
    expect(panel.chat.locator(".cw-search")).to_be_visible(timeout=30_000)
    assert page.evaluate(remembered) == []
    assert not page_errors, page_errors


def test_insert_in_notebook_and_the_panel_output(lab, lab_page, repo, page, page_errors, shot):
    sid = new_session(lab, repo, "Into a notebook")
    lab_page.open(write_notebook(lab.work_dir, "insert", cells=["x = 1"]))
    panel = SidePanel(page)

    # `%cloudws panel` in a cell: its fresh output opens the panel on the current session.
    cell = lab_page.run_cell(f"%load_ext jupyter_cloudws\n%cloudws use {sid}\n%cloudws panel")
    # (The renderer is the output widget itself, so the link class is on the output.)
    expect(cell.locator(".jp-cloudws-panel-link")).to_contain_text(f"Opened session {sid}", timeout=30_000)
    expect(panel.chat.locator(".cw-title")).to_have_text("Into a notebook", timeout=30_000)

    # An old one (a notebook opened again) only says so, and leaves the panel where it is.
    stays = new_session(lab, repo, "Stays")
    panel.open_session("Stays")
    old = lab_page.run_cell(
        f"from jupyter_cloudws.widget.panel import PanelLink\nPanelLink({sid!r}, created_s={time.time() - 3600})"
    )
    expect(old.locator(".jp-cloudws-panel-link")).to_contain_text(f"Session {sid}", timeout=30_000)
    # The server handles a panel's messages in order: once it answered a later one (the list), an
    # open_session the old output might have sent would have shown by now.
    panel.chat.get_by_role("button", name="Sessions").click()
    expect(panel.chat.locator(".cw-session-row", has_text="Stays")).to_be_visible(timeout=30_000)
    expect(panel.chat.locator(".cw-title")).to_have_text("Stays")

    # Insert in notebook: a cell below the active one with the session's chat, not run.
    lab_page.cell(0).locator(".cm-content").click()
    count = lab_page.cells.count()
    panel.insert_button.click()
    wait_until(lambda: lab_page.cells.count() == count + 1, 10, "the inserted cell")
    assert lab_page.source(1) == f"%load_ext jupyter_cloudws\n%cloudws use {stays}\n%cloudws chat"
    expect(lab_page.cell(1).locator(".jp-InputArea-prompt")).to_have_text("[ ]:")
    shot("inserted")
    assert not page_errors, page_errors

