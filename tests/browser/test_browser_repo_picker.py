"""A person starts a session from the chat's new-session form by choosing one of their GitHub
repositories: most recently pushed first, the private one marked, narrowed by typing (at once in
the page, then by the server), and once one is chosen its branches with the default preselected.

Real JupyterLab, kernel and headless Chromium; a real git host (``git http-backend``) behind a
fake GitHub REST API held to GitHub's OpenAPI description; the hub's own GitHub routes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from lab_helpers import write_notebook
from playwright.sync_api import expect
from support import git

from jupyter_cloudws.testing.git_http import GitHttpServer

SECRET = "octo-user/secret-lab"
NOTES = "octo-user/notes"
LATE = "octo-user/secret-late"  # added once the form has its list: only the server's answer has it
HOSTILE = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def lab_server_config(github: Any) -> dict[str, Any]:
    return {"GitHub": {"url": github.web_url, "api_url": github.url, "token": github.token}}


def add_branch(git_host: GitHttpServer, full_name: str, branch: str, work: Path) -> None:
    git("clone", "--quiet", git_host.url_for(full_name), str(work))
    git("checkout", "--quiet", "-b", branch, cwd=work)
    (work / f"{branch}.txt").write_text(f"{branch}\n")
    git("add", "--all", cwd=work)
    git("commit", "--quiet", "-m", f"work on {branch}", cwd=work)
    git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work)


@pytest.fixture(scope="module")
def repos(git_host: GitHttpServer, github: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    now = time.time()
    git_host.make_remote(NOTES)
    github.add_repo(NOTES, description=HOSTILE, pushed_at=now - 3 * 86400)
    git_host.make_remote(SECRET)
    tmp = tmp_path_factory.mktemp("pushes")
    add_branch(git_host, SECRET, "trunk", tmp / "trunk")
    add_branch(git_host, SECRET, "feature", tmp / "feature")
    # Not "main", and not first by name: the form must take the host's default.
    git("symbolic-ref", "HEAD", "refs/heads/trunk", cwd=git_host.path_for(SECRET))
    github.add_repo(SECRET, private=True, description="The lab's private notes", pushed_at=now - 2 * 3600)


def test_a_session_from_one_of_the_users_github_repositories(lab, lab_page, repos, git_host, github, page,
                                                            page_errors, shot):  # fmt: skip
    lab_page.open(write_notebook(lab.work_dir, "picker"))
    cell = lab_page.run_cell("import jupyter_cloudws\nclient = jupyter_cloudws.connect()\nclient.chat()")
    chat = cell.locator(".cloudws-chat")
    chat.get_by_role("button", name="New").click()

    # Most recently pushed first, the private one marked; every value from the host stays text.
    rows = chat.locator(".cw-gh-repo")
    expect(rows).to_have_count(2, timeout=30_000)
    expect(rows.locator(".cw-gh-name")).to_have_text([SECRET, NOTES])
    expect(rows.nth(0).locator(".cw-gh-private")).to_have_text("🔒 private")
    expect(rows.nth(1).locator(".cw-gh-private")).to_have_count(0)
    expect(rows.nth(0).locator(".cw-gh-time")).to_have_text("pushed 2 h ago")
    expect(rows.nth(1).locator(".cw-gh-time")).to_have_text("pushed 3 days ago")
    expect(rows.nth(1).locator(".cw-gh-desc")).to_have_text(HOSTILE)
    assert chat.locator("img").count() == 0 and page.evaluate("() => window.__pwned") is None
    shot("listed")

    # Typing narrows the list at once, then the server's answer to what was typed replaces it.
    git_host.make_remote(LATE)
    github.add_repo(LATE, pushed_at=time.time() - 60)
    repo_field = chat.locator(".cw-repo")
    repo_field.click()
    repo_field.press_sequentially("secret")
    expect(rows.locator(".cw-gh-name")).to_have_text([LATE, SECRET], timeout=30_000)
    repo_field.press_sequentially("-lab")
    expect(rows.locator(".cw-gh-name")).to_have_text([SECRET])
    shot("filtered")

    # Chosen: the field holds its clone URL, and its branches come as a choice, the default chosen.
    rows.filter(has_text=SECRET).click()
    expect(repo_field).to_have_value(git_host.url_for(SECRET))
    branch = chat.locator(".cw-base-branch-select")
    expect(branch).to_be_visible(timeout=30_000)
    expect(branch).to_have_value("trunk")
    expect(branch.locator("option")).to_have_text(["trunk (default)", "feature", "main"])
    expect(chat.locator("input.cw-base-branch")).to_be_hidden()
    expect(rows.filter(has_text=SECRET)).to_have_attribute("aria-selected", "true")
    shot("chosen")

    chat.locator(".cw-new-title").fill("Picked from GitHub")
    chat.get_by_role("button", name="Create").click()
    expect(chat.locator(".cw-title")).to_have_text("Picked from GitHub", timeout=30_000)
    with lab.client() as client:
        (made,) = [s for s in client.get("/sessions").json()["sessions"] if s["title"] == "Picked from GitHub"]
    assert (made["repo"], made["base_branch"]) == (git_host.url_for(SECRET), "trunk")
    assert page.evaluate("() => window.__pwned") is None
    assert not [e for e in page_errors if e.startswith("pageerror")], page_errors
    assert json.dumps(github.errors) == "[]"


def test_a_path_typed_in_hides_the_list_and_a_hosts_refusal_is_shown_in_words(
    lab, lab_page, repos, github, page, page_errors, shot
):
    lab_page.open(write_notebook(lab.work_dir, "typed"))
    cell = lab_page.run_cell("import jupyter_cloudws\nclient = jupyter_cloudws.connect()\nclient.chat()")
    chat = cell.locator(".cloudws-chat")
    chat.get_by_role("button", name="New").click()
    expect(chat.locator(".cw-gh-repo").first).to_be_visible(timeout=30_000)
    repo_field = chat.locator(".cw-repo")
    repo_field.press_sequentially("/srv/repos/app.git")
    expect(chat.locator(".cw-gh-repo")).to_have_count(0)
    expect(chat.locator("input.cw-base-branch")).to_be_visible()

    # The host refuses the token: the form says so in words, in place of the list.
    token = github.token
    github.revoke_token()
    try:
        repo_field.fill("")
        repo_field.press_sequentially("octo")
        status = chat.locator(".cw-gh-status.cw-gh-error")
        expect(status).to_contain_text("Could not list your GitHub repositories:", timeout=30_000)
        assert "Traceback" not in status.inner_text() and token not in status.inner_text()
        expect(chat.locator(".cw-gh-repo")).to_have_count(0)
        shot("refused")
    finally:
        github.token = token
    assert not [e for e in page_errors if e.startswith("pageerror")], page_errors
