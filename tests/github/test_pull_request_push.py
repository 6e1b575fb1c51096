"""A pull request pushes first: a real jupyter-server, the real Claude Code CLI in a local sandbox,
a token-protected git host that refuses pushes for a while, and the fake GitHub held to GitHub's
OpenAPI description. The prompt's own push is refused; once the host accepts again, one POST
pushes the branch through the running sandbox and opens the pull request."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from github_helpers import REPO
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text, tool_use
from jupyter_cloudws.testing.fake_github import FakeGitHub
from jupyter_cloudws.testing.git_http import GitHttpServer

TOKEN = "ghp_pushFirstToken0123456789abcdefXYZ"
REFUSING_HOOK = "#!/bin/sh\necho 'pushes to this repository are paused for maintenance' >&2\nexit 1\n"


@pytest.fixture
def git_http(tmp_path: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "git-host", token=TOKEN) as server:
        yield server


@pytest.fixture
def jp_server_config(jp_server_config: dict, fake_github: FakeGitHub) -> dict:
    return {**jp_server_config, "GitHub": {"url": fake_github.web_url, "api_url": fake_github.url,
                                           "token": fake_github.token}}  # fmt: skip


def on_host(git_http: GitHttpServer, ref: str) -> str:
    found = subprocess.run(["git", "--git-dir", str(git_http.path_for(REPO)), "rev-parse", "--verify", "--quiet", ref],
                           capture_output=True, text=True)  # fmt: skip
    return found.stdout.strip()


async def a_session_whose_push_is_refused(
    api, fake_anthropic: FakeAnthropic, fake_github: FakeGitHub, git_http: GitHttpServer
) -> tuple[dict[str, Any], Path]:
    """A session on a private repository whose one prompt (adding LICENSE) succeeded but whose
    push the host refused with a pre-receive hook; the session, and the hook to remove."""
    url = git_http.make_remote(REPO, {"README.md": "# project\n"})
    fake_github.add_repo(REPO, private=True)
    hook = git_http.path_for(REPO) / "hooks" / "pre-receive"
    hook.write_text(REFUSING_HOOK)
    hook.chmod(0o755)
    fake_anthropic.on("add a license", tool_use("Write", {"file_path": "LICENSE", "content": "MIT\n"}),
                      text("Added LICENSE."))  # fmt: skip
    session = await api.new_session(url)
    prompt = await api.prompt(session["id"], "Please add a license")
    done = await api.wait_until_complete(session["id"], prompt["message_id"])
    assert done["success"], done
    return session, hook


async def test_a_branch_whose_push_was_refused_is_pushed_and_its_pull_request_opened_by_one_post(
    api, fake_anthropic: FakeAnthropic, fake_github: FakeGitHub, git_http: GitHttpServer
) -> None:
    assert fake_github.token == TOKEN  # one token for the API and the private git host, as on GitHub
    session, hook = await a_session_whose_push_is_refused(api, fake_anthropic, fake_github, git_http)
    sid, branch = session["id"], session["branch"]
    (refused,) = [e for e in await api.events(sid) if e["type"] == "git"]
    assert (refused["pushed"], refused["committed"]) == (False, True)
    assert "paused for maintenance" in refused["error"]
    assert on_host(git_http, f"refs/heads/{branch}") == ""

    hook.unlink()  # the host takes pushes again
    code, answer = await api.post(f"sessions/{sid}/pull-request")
    assert code == 201, answer
    assert (answer["created"], answer["pull_request"]["head"], answer["pull_request"]["base"]) == (True, branch, "main")
    assert on_host(git_http, f"refs/heads/{branch}") == refused["sha"]
    assert fake_github.pull(REPO, 1).head_sha == refused["sha"]
    pushed = [e for e in await api.events(sid) if e["type"] == "git"][-1]
    assert (pushed["message_id"], pushed["pushed"], pushed["committed"], pushed["error"], pushed["sha"]) == (
        None, True, False, None, refused["sha"])  # fmt: skip
    assert fake_github.errors == []


async def test_a_push_the_host_still_refuses_comes_back_in_the_hosts_words(
    api, fake_anthropic: FakeAnthropic, fake_github: FakeGitHub, git_http: GitHttpServer
) -> None:
    session, _ = await a_session_whose_push_is_refused(api, fake_anthropic, fake_github, git_http)

    code, error = await api.post(f"sessions/{session['id']}/pull-request")
    assert (code, error["code"]) == (409, "not_pushed"), error
    assert error["message"].startswith(f"pushing {session['branch']} again failed: git push failed")
    assert "paused for maintenance" in error["message"]
    assert TOKEN not in error["message"]
    assert fake_github.pulls == []
    gits = [e for e in await api.events(session["id"]) if e["type"] == "git"]
    assert len(gits) == 2 and gits[-1]["message_id"] is None and gits[-1]["pushed"] is False


async def test_a_pull_request_asked_for_while_a_prompt_runs_waits_for_it(
    api, fake_anthropic: FakeAnthropic, fake_github: FakeGitHub, git_http: GitHttpServer, cloudws_data_dir: Path
) -> None:
    url = git_http.make_remote(REPO, {"README.md": "# project\n"})
    fake_anthropic.on("add a license", tool_use("Write", {"file_path": "LICENSE", "content": "MIT\n"}),
                      text("Added LICENSE."))  # fmt: skip
    # The agent's command blocks on a pipe in .git (never committed) until the test writes to it.
    fake_anthropic.on("wait for the gate", tool_use("Bash", {"command": "mkfifo .git/gate"}),
                      tool_use("Bash", {"command": "cat .git/gate"}), text("Through the gate."))  # fmt: skip
    fake_github.add_repo(REPO, private=True)
    hook = git_http.path_for(REPO) / "hooks" / "pre-receive"
    hook.write_text(REFUSING_HOOK)
    hook.chmod(0o755)
    session = await api.new_session(url)
    sid = session["id"]
    first = await api.prompt(sid, "Please add a license")
    refused = await api.wait_for_event(sid, lambda e: e["type"] == "git" and e["message_id"] == first["message_id"])
    assert refused["error"], refused
    hook.unlink()

    second = await api.prompt(sid, "Please wait for the gate")
    # The pipe was made by the call before: once `cat` is called, it is there.
    await api.wait_for_event(sid, lambda e: e["type"] == "tool_call" and e["input"].get("command") == "cat .git/gate")
    (gate,) = cloudws_data_dir.glob("sandboxes/*/box/repo/.git/gate")
    code, error = await api.post(f"sessions/{sid}/pull-request")
    assert (code, error["code"]) == (409, "busy"), error
    assert "wait for the running prompt to finish" in error["message"]
    assert on_host(git_http, f"refs/heads/{session['branch']}") == "" and fake_github.pulls == []

    with open(gate, "w") as pipe:  # the reader is there: this opens at once, and closing it ends `cat`
        pipe.write("go\n")
    assert (await api.wait_until_complete(sid, second["message_id"]))["success"]
    code, answer = await api.post(f"sessions/{sid}/pull-request")
    assert code == 201, answer
    assert on_host(git_http, f"refs/heads/{session['branch']}") == refused["sha"]
