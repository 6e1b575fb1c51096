"""A person in JupyterLab drives a Claude Code session from a notebook: the magic starts it, the
chat widget streams tool calls and rendered markdown, Stop ends a long command, the transcript
comes back after a reload, and the chat docks in the side panel.

Real JupyterLab, real kernel, headless Chromium, the real Claude Code CLI against the fake API.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_helpers import wait_until, write_notebook
from playwright.sync_api import expect
from support import git, make_bare_repo

from jupyter_cloudws.testing.fake_anthropic import text, tool_use, turn

ANSWER = """Created **greeting.txt**. Summary:

| file | lines |
|------|-------|
| greeting.txt | 1 |

```python
print("hello")
```

<img src=x onerror="window.__pwned = 1">"""


@pytest.fixture(scope="module")
def repo(lab) -> Path:
    bare = make_bare_repo(lab.root, "app")
    return bare.rename(lab.work_dir / "app.git")  # where the file browser shows it


@pytest.fixture(scope="module", autouse=True)
def script(lab_fake_anthropic):
    lab_fake_anthropic.on(
        "greeting file",
        tool_use("Bash", {"command": "echo hello > greeting.txt && sleep 2 && cat greeting.txt"}),
        turn(tool_use("Read", {"file_path": "greeting.txt"}), tool_use("Read", {"file_path": "README.md"})),
        turn(text(ANSWER), delay_s=0.01),
    )
    lab_fake_anthropic.on("take your time", tool_use("Bash", {"command": "echo busy && sleep 60 && echo done",
                                                               "timeout": 120000}), text("Finished."))  # fmt: skip
    lab_fake_anthropic.on("say thanks", text("You're welcome."))


def chat_in(cell):
    return cell.locator(".cloudws-chat")


def test_a_session_from_the_magic_streams_into_the_chat_and_survives_a_reload(
    lab, lab_page, repo, page, page_errors, shot
):
    lab_page.open(write_notebook(lab.work_dir, "session"))
    lab_page.run_cell("%load_ext jupyter_cloudws")
    made = lab_page.run_cell(f'%cloudws new {repo} --title "Greeting"')
    expect(lab_page.wait_for_output(made, text="is current")).to_contain_text("cloudws/")

    cell = lab_page.run_cell("%cloudws Please make a greeting file")
    chat = chat_in(cell)
    expect(chat).to_be_visible()
    # While the agent works: a running tool row, the working line, and the Stop button.
    running = chat.locator(".cw-tool.cw-running")
    expect(running.first).to_be_visible(timeout=60_000)
    expect(running.first.locator(".cw-summary")).to_contain_text("echo hello > greeting.txt")
    expect(chat.locator(".cw-working")).to_contain_text("Claude is working")
    expect(chat.locator(".cw-stop")).to_be_visible()
    shot("working")

    result = chat.locator(".cw-result")
    expect(result).to_contain_text("Done", timeout=60_000)
    expect(chat.locator(".cw-tool.cw-done")).to_have_count(3)
    # Consecutive calls of one tool fold into a group row that opens to show each call.
    group = chat.locator(".cw-group")
    expect(group.locator(".cw-group-label")).to_have_text("Read 2 files")
    group.locator("summary").first.click()
    expect(group.locator(".cw-tool .cw-summary")).to_have_text(["greeting.txt", "README.md"])
    expect(chat.locator(".cw-badge")).to_have_text("Ready")
    expect(chat.locator(".cw-isolation")).to_have_text("🔒 bubblewrap")
    expect(chat.locator(".cw-git")).to_contain_text("pushed")
    answer = chat.locator(".cw-assistant")
    expect(answer.locator("table td").first).to_have_text("greeting.txt")
    expect(answer.locator("strong")).to_have_text("greeting.txt")
    expect(answer.locator(".highlight")).to_contain_text('print("hello")')
    # The agent's HTML is shown as text, never run.
    expect(answer).to_contain_text('<img src=x onerror="window.__pwned = 1">')
    assert page.evaluate("() => window.__pwned") is None
    expect(chat.locator(".cw-stop")).to_be_hidden()
    # A tool row opens to show its input and output.
    first_row = chat.locator(".cw-tool").first
    first_row.locator("summary").click()
    expect(first_row.locator(".cw-output")).to_contain_text("hello")
    shot("done")

    # The work is on the session branch.
    branch = git("--git-dir", str(repo), "branch", "--list", "cloudws/*").strip()
    assert git("--git-dir", str(repo), "show", f"{branch}:greeting.txt") == "hello"

    # After a reload the chat comes back from the kernel with its whole transcript.
    rows_before = chat.locator(".cw-block").count()
    lab_page.save().reload().wait_kernel_idle()
    chat = chat_in(lab_page.cell(2))
    expect(chat.locator(".cw-result")).to_contain_text("Done", timeout=30_000)
    assert chat.locator(".cw-block").count() == rows_before
    expect(chat.locator(".cw-assistant table")).to_be_visible()
    shot("after-reload")
    assert not [e for e in page_errors if e.startswith("pageerror")], page_errors


def test_the_prompt_box_sends_and_stop_ends_a_long_command(lab, lab_page, repo, page_errors, shot):
    lab_page.open(write_notebook(lab.work_dir, "stop"))
    lab_page.run_cell("%load_ext jupyter_cloudws")
    lab_page.run_cell(f"%cloudws new {repo} --title Stoppable")
    cell = lab_page.run_cell("get_ipython().find_magic('cloudws').__self__.session")
    chat = chat_in(cell)
    expect(chat.locator(".cw-title")).to_have_text("Stoppable")

    box = chat.locator(".cw-input-text")
    # Typed key by key: the first keys start the sandbox (warm-up), and the box must stay usable.
    box.press_sequentially("Please take your time", delay=20)
    box.press("Control+Enter")
    expect(box).to_have_value("")
    expect(chat.locator(".cw-user")).to_contain_text("Please take your time")
    expect(chat.locator(".cw-tool.cw-running")).to_be_visible(timeout=60_000)
    wait_until(lambda: "sleep 60" in chat.locator(".cw-tool.cw-running .cw-summary").inner_text(), 10, "the command")
    shot("long-command")
    chat.locator(".cw-stop").click()
    expect(chat.locator(".cw-result")).to_contain_text("Stopped", timeout=20_000)
    expect(chat.locator(".cw-tool.cw-running")).to_have_count(0)
    shot("stopped")

    # The session goes on: Escape in an idle box does nothing, and the next prompt works.
    box.fill("Now say thanks")
    box.press("Escape")
    box.press("Control+Enter")
    expect(chat.locator(".cw-assistant").last).to_have_text("You're welcome.", timeout=60_000)
    expect(chat.locator(".cw-result").last).to_contain_text("Done")
    assert not [e for e in page_errors if e.startswith("pageerror")], page_errors


def test_sessions_from_the_picker_and_form_and_the_chat_magic(lab, lab_page, repo, page, page_errors, shot):
    lab_page.open(write_notebook(lab.work_dir, "picker"))
    cell = lab_page.run_cell("import jupyter_cloudws\nclient = jupyter_cloudws.connect()\nclient.chat()")
    chat = chat_in(cell)
    expect(chat.locator(".cw-picker")).to_be_visible()

    # A new session from the form, with a recent repository as a chip and a model from the list.
    chat.get_by_role("button", name="New").click()
    chip = chat.locator(".cw-chip").first
    expect(chip).to_be_visible()
    chip.click()
    assert chat.locator(".cw-repo").input_value() == str(repo)
    # Choosing it warmed it: the server builds the repository's image while the form is filled in.
    with lab.client() as client:
        wait_until(lambda: [b for b in client.get("/prebuilds").json()["prebuilds"] if b["repo"] == str(repo)], 30,
                   "a prebuild of the chosen repository")  # fmt: skip
    chat.locator(".cw-new-title").fill("From the form")
    chat.locator(".cw-model").select_option(label="Haiku")
    shot("new-session-form")
    chat.get_by_role("button", name="Create").click()
    expect(chat.locator(".cw-title")).to_have_text("From the form")
    expect(chat.locator(".cw-branch")).to_contain_text("cloudws/")

    # Inline rename: Escape cancels, Enter saves.
    chat.locator(".cw-title").click()
    chat.locator(".cw-title-input").fill("Not this")
    chat.locator(".cw-title-input").press("Escape")
    expect(chat.locator(".cw-title")).to_have_text("From the form")
    chat.locator(".cw-title").click()
    chat.locator(".cw-title-input").fill("Renamed in the browser")
    chat.locator(".cw-title-input").press("Enter")
    expect(chat.locator(".cw-title")).to_have_text("Renamed in the browser")

    # The picker: Active group with relative times, and search.
    chat.get_by_role("button", name="Sessions").click()
    expect(chat.locator(".cw-group-title").first).to_contain_text("Active")
    expect(chat.locator(".cw-session-row", has_text="Renamed in the browser")).to_contain_text("just now")
    chat.locator(".cw-search").fill("Renamed in")
    expect(chat.locator(".cw-session-row")).to_have_count(1)
    shot("picker")
    chat.locator(".cw-session-row").click()
    expect(chat.locator(".cw-title")).to_have_text("Renamed in the browser")

    # The magic shows a session's chat in a cell (the side panel is the lab extension's, tested with it).
    cell = lab_page.run_cell("%load_ext jupyter_cloudws\n"
                             "get_ipython().run_line_magic('cloudws', 'use ' + client.sessions(q='Renamed in')[0].id)\n"
                             "%cloudws chat")  # fmt: skip
    again = lab_page.wait_for_output(cell, selector=".cloudws-chat")
    expect(again.locator(".cw-title")).to_have_text("Renamed in the browser")
    shot("chat-magic")
    assert not [e for e in page_errors if e.startswith("pageerror")], page_errors
