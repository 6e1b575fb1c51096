"""A person reviews the agent's work in the chat, in JupyterLab: the files a prompt changed, a
file's diff, a notebook's cells, the session's total, then a pull request opened from the chat
whose badge follows the pull request from open to merged.

Real JupyterLab, kernel and headless Chromium; the real Claude Code CLI against the fake API, in
a local sandbox that clones from and pushes to a real git host (``git http-backend``) behind a
fake GitHub REST API held to GitHub's OpenAPI description; the hub's own changes and pull
request routes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import nbformat
import pytest
from lab_helpers import write_notebook
from playwright.sync_api import expect

from jupyter_cloudws.testing.fake_anthropic import text, tool_use
from jupyter_cloudws.testing.git_http import GitHttpServer

REPO = "octo-user/project"
HOSTILE_NAME = "<img src=x onerror=window.__pwned=1>.py"


def notebook(source: str, outputs: list[Any]) -> str:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = outputs
    nb.cells = [cell, nbformat.v4.new_markdown_cell("# Notes")]
    return nbformat.writes(nb)


BEFORE_NB = notebook("x = 1\nprint(x)\n", [nbformat.v4.new_output("stream", name="stdout", text="1\n")])
AFTER_NB = notebook("x = 2\nprint(x)\n", [
    nbformat.v4.new_output("stream", name="stdout", text="2\n"),
    nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="}),
])  # fmt: skip
# One Bash call makes every change: the app's line holds markup, a file's name is markup, the
# notebook's first cell and outputs change, and a big file's diff is past the hub's limit.
EDIT = f"""cat > app.py <<'EOF'
import os
print('<script>window.__pwned = 2</script>')
EOF
printf 'x = 1\\n' > '{HOSTILE_NAME}'
cat > analysis.ipynb <<'EOF'
{AFTER_NB}
EOF
seq 1 80000 > big.txt
"""


@pytest.fixture(scope="module")
def lab_server_config(github: Any) -> dict[str, Any]:
    return {"GitHub": {"url": github.web_url, "api_url": github.url, "token": github.token}}


@pytest.fixture(scope="module")
def repo_url(git_host: GitHttpServer, github: Any) -> str:
    url = git_host.make_remote(REPO, {"README.md": "# project\n", "app.py": "import os\nprint('old')\n",
                                      "analysis.ipynb": BEFORE_NB})  # fmt: skip
    github.add_repo(REPO)
    return url


@pytest.fixture(scope="module", autouse=True)
def script(lab_fake_anthropic: Any) -> None:
    lab_fake_anthropic.on("review changes", tool_use("Bash", {"command": EDIT}),
                          text("Changed **app.py**, the notebook's first cell, and added two files."))  # fmt: skip


def test_the_files_a_prompt_changed_their_diffs_and_a_pull_request_followed_to_merged(
    lab, lab_page, repo_url, github, page, page_errors, shot
):
    lab_page.open(write_notebook(lab.work_dir, "review"))
    lab_page.run_cell("%load_ext jupyter_cloudws")
    lab_page.run_cell(f'%cloudws new {repo_url} --title "Review"')
    cell = lab_page.run_cell("%cloudws Please make the review changes")
    chat = cell.locator(".cloudws-chat")
    expect(chat.locator(".cw-result")).to_contain_text("Done", timeout=90_000)

    # Under the prompt: its files, folded to one line that opens to the list.
    git_block = chat.locator(".cw-git")
    line = git_block.locator(".cw-changes-line")
    expect(line).to_have_text(re.compile(r"^4 files changed \+\d+ −\d+$"))
    line.click()
    paths = git_block.locator(".cw-file-path")
    expect(paths).to_have_count(4)
    assert sorted(paths.all_inner_texts()) == sorted(["app.py", "analysis.ipynb", "big.txt", HOSTILE_NAME])
    expect(git_block.locator(".cw-file", has_text="big.txt").locator(".cw-file-stat")).to_have_text("+80000 −0")

    # A file opens to its highlighted diff; the markup in it stays text.
    app = git_block.locator(".cw-file", has_text="app.py")
    app.locator("summary").click()
    added = app.locator(".cw-diff .gi").filter(has_text="print(")
    expect(added).to_have_text("+print('<script>window.__pwned = 2</script>')")
    expect(app.locator(".cw-diff .gd").filter(has_text="print(")).to_have_text("-print('old')")
    hostile = git_block.locator(".cw-file", has_text="onerror")
    hostile.locator("summary").click()
    expect(hostile.locator(".cw-diff .gi")).to_contain_text(["+x = 1"])

    # A notebook shows its changed cells, outputs in words, never its JSON.
    nb = git_block.locator(".cw-file", has_text="analysis.ipynb")
    nb.locator("summary").click()
    first = nb.locator(".cw-cell").first
    expect(first.locator(".cw-cell-head")).to_have_text(re.compile(r"^cell 0 · code · modified$"))
    expect(first.locator(".gd")).to_contain_text(["-x = 1"])
    expect(first.locator(".gi")).to_contain_text(["+x = 2"])
    expect(first.locator(".cw-cell-outputs")).to_contain_text("image/png")
    assert '"cell_type"' not in nb.inner_text() and '"outputs"' not in nb.inner_text()

    # A diff past the hub's limit shows its start and says it was cut.
    big = git_block.locator(".cw-file", has_text="big.txt")
    big.locator("summary").click()
    expect(big.locator(".cw-diff-marker")).to_contain_text("too large", timeout=30_000)
    shot("diffs")

    # The session's total, from the session's changes.
    expect(chat.locator(".cw-session-changes .cw-changes-line")).to_have_text(
        re.compile(r"^Session: 4 files changed \+\d+ −\d+$")
    )
    assert chat.locator("script, img").count() == 0 and page.evaluate("() => window.__pwned") is None

    # A pull request from the chat: the drafted title, edited, sent; the badge links to it.
    chat.get_by_role("button", name="Pull request").click()
    title = chat.locator(".cw-pr-title")
    expect(title).to_have_value(re.compile("review changes"), timeout=30_000)
    title.fill("Review changes from the chat")
    chat.locator(".cw-pr-body").fill("Edited in the chat.")
    shot("pr-form")
    chat.locator(".cw-pr-send").click()
    badge = chat.locator("a.cw-pr")
    expect(badge).to_have_text(re.compile(r"^#\d+ open$"), timeout=60_000)
    number = int(badge.inner_text().split()[0][1:])
    pull = github.pull(REPO, number)
    assert (pull.title, pull.body) == ("Review changes from the chat", "Edited in the chat.")
    assert badge.get_attribute("href") == f"{github.web_url}/{REPO}/pull/{number}"
    expect(chat.get_by_role("button", name="Pull request")).to_have_count(0)
    shot("pr-open")

    # Merged on the host: the displayed chat asks, and its badge follows.
    lab_page.run_cell("m = get_ipython().find_magic('cloudws').__self__\nm.client.chat(m.session).pr_poll_interval_s = 0.5")
    github.merge_pull(REPO, number)
    expect(badge).to_have_text(f"#{number} merged", timeout=60_000)
    badge.scroll_into_view_if_needed()
    shot("pr-merged")
    assert not [e for e in page_errors if e.startswith("pageerror")], page_errors
    assert json.dumps(github.errors) == "[]"
