"""The whole review of a private repository, as a user lives it: a real jupyter-server with
``c.GitHub`` pointing at a token-protected git host on loopback (``git http-backend``) and at the
fake GitHub REST API (held to GitHub's OpenAPI description), the real Claude Code CLI in a local
sandbox. A prompt edits a Python file and a notebook; the changes show both diffs, the notebook's
cell by cell; a pull request is opened, found again when asked twice, merged on the host and
followed in the chat's stream; and the token is found nowhere it must not be."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from review_support import notebook, stream
from token_watch import ProcessSampler, files_holding

from jupyter_cloudws.testing.fake_anthropic import text, tool_use
from jupyter_cloudws.testing.fake_github import FakeGitHub
from jupyter_cloudws.testing.git_http import GitHttpServer
from jupyter_cloudws.testing.pytest_plugin import serving_fake_github

TOKEN = "ghp_reviewE2eToken0123456789abcdefQRS"
REPO = "octo-user/analysis"
EDIT = "sed -i -e 's/x = 1/x = 2/' -e 's/result 1/result 2/' app.py analysis.ipynb"


@pytest.fixture
def private_host(tmp_path: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "git-host", token=TOKEN) as server:
        yield server


@pytest.fixture
def github(private_host: GitHttpServer) -> Iterator[FakeGitHub]:
    with serving_fake_github(private_host) as fake:  # the git host's token is the API's, as on GitHub
        yield fake


@pytest.fixture
def jp_server_config(jp_server_config: dict, private_host: GitHttpServer, github: FakeGitHub) -> dict:
    return {**jp_server_config, "GitHub": {"url": private_host.url, "api_url": github.url, "token": TOKEN}}


def pull_request_states(frames: list[dict]) -> list[str]:
    return [f["event"]["state"] for f in frames if f["type"] == "event" and f["event"]["type"] == "pull_request"]


async def test_a_private_repository_is_reviewed_and_its_pull_request_followed_to_merged(
    api, open_socket, fake_anthropic, private_host, github, cloudws_data_dir, caplog
):
    caplog.set_level(logging.DEBUG)
    url = private_host.make_remote(REPO, {
        "app.py": "x = 1\nprint(x)\n",
        "analysis.ipynb": notebook(("markdown", "# Analysis\n", []),
                                   ("code", "x = 1\nprint(f'result {x}')\n", [stream("result 1\n")])),
    })  # fmt: skip
    github.add_repo(REPO, private=True)
    fake_anthropic.on("bump x", tool_use("Bash", {"command": EDIT}), text("x is now **2** in app.py and the notebook."))

    with ProcessSampler(TOKEN) as sampler:
        code, listed = await api.get("github/repos")
        assert code == 200 and [(r["full_name"], r["private"]) for r in listed["repos"]] == [(REPO, True)]
        (picked,) = listed["repos"]
        assert picked["clone_url"] == url
        code, branches = await api.get(f"github/repos/{REPO}/branches")
        assert code == 200 and branches["default_branch"] == "main"

        session = await api.new_session(picked["clone_url"], base_branch=branches["default_branch"])
        sid = session["id"]
        sock = await open_socket(sid)
        await sock.send({"type": "subscribe"})
        await sock.until(lambda f: f["type"] == "subscribed")

        prompt = await api.prompt(sid, "Please bump x to 2 in the code and the analysis")
        done = await api.wait_until_complete(sid, prompt["message_id"])
        assert done["success"], done

        # What the agent changed, for the session and for this prompt: the same two files.
        (git_event,) = [e for e in await api.events(sid) if e["type"] == "git"]
        assert git_event["pushed"] and git_event["error"] is None, git_event
        assert sorted(f["path"] for f in git_event["files"]) == ["analysis.ipynb", "app.py"]
        for query in ({}, {"prompt": prompt["message_id"]}):
            code, changes = await api.get(f"sessions/{sid}/changes", **query)
            assert code == 200, changes
            files = {f["path"]: f for f in changes["files"]}
            assert changes["totals"] == {"files": 2, "additions": 3, "deletions": 3}
            assert "-x = 1\n+x = 2\n" in files["app.py"]["diff"]
            nb = files["analysis.ipynb"]
            assert nb["notebook"] and '"cell_type":' not in nb["diff"]
            (cell,) = nb["cells"]
            assert (cell["index"], cell["status"]) == (1, "modified")
            assert "-x = 1\n+x = 2\n" in cell["source_diff"] and cell["outputs"] == "1 output changed (stdout)"

        # The pull request: drafted from the prompt and the agent's summary, opened once.
        code, draft = await api.get(f"sessions/{sid}/pull-request/draft")
        assert code == 200 and draft["title"] == "Please bump x to 2 in the code and the analysis"
        assert "x is now **2**" in draft["body"]
        code, made = await api.post(f"sessions/{sid}/pull-request", {"title": "Bump x to 2", "body": draft["body"]})
        assert code == 201 and made["created"], made
        pull = made["pull_request"]
        assert (pull["kind"], pull["state"], pull["base"], pull["head"]) == ("pull_request", "open", "main", session["branch"])
        assert pull["url"] == f"{private_host.url}/{REPO}/pull/{pull['number']}"
        code, again = await api.post(f"sessions/{sid}/pull-request", {})
        assert code == 200 and not again["created"] and again["pull_request"]["number"] == pull["number"]
        assert len(github.pulls) == 1

        # Merged on the host: the next look at the artifacts sees it, and the chat hears it live.
        github.merge_pull(REPO, pull["number"])
        code, artifacts = await api.get(f"sessions/{sid}/artifacts")
        assert code == 200 and [(a["number"], a["state"]) for a in artifacts["artifacts"]] == [(pull["number"], "merged")]
        await sock.until(lambda f: pull_request_states([f]) == ["merged"])
        assert pull_request_states(sock.frames) == ["open", "merged"]
    assert github.errors == [], "every request and answer held to GitHub's OpenAPI description"

    # The token, nowhere it must not be.
    assert sampler.samples > 10 and sampler.agent_environs > 0, "the sampler saw the agent while it ran"
    assert sampler.found == []
    everything = await api.events(sid)
    assert TOKEN not in json.dumps(everything) and TOKEN not in json.dumps(sock.frames)
    assert TOKEN not in caplog.text
    configs = [*cloudws_data_dir.glob("sandboxes/*/box/repo/.git/config"), *cloudws_data_dir.glob("mirrors/*/config")]
    assert len(configs) >= 2 and all(TOKEN not in p.read_text() for p in configs)
    assert files_holding(cloudws_data_dir, TOKEN) == []
