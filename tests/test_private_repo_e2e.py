"""A private repository end to end: a real jupyter-server with ``c.GitHub`` pointing at a real
token-protected git host on loopback (``git http-backend``), the real Claude Code CLI in a local
sandbox against the fake API. The session clones, a prompt edits a file, the push lands on the
host, and the token is found nowhere it must not be, sampled while it all runs."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_cloudws.testing.fake_anthropic import text, tool_use
from token_watch import ProcessSampler, files_holding
from jupyter_cloudws.testing.git_http import GitHttpServer

TOKEN = "ghp_privateE2eToken0123456789abcdefXYZ"


@pytest.fixture
def private_host(tmp_path: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "git-host", token=TOKEN) as server:
        yield server


@pytest.fixture
def github_token() -> str:
    return TOKEN


@pytest.fixture
def jp_server_config(jp_server_config: dict, private_host: GitHttpServer, github_token: str) -> dict:
    return {**jp_server_config, "GitHub": {"url": private_host.url, "token": github_token}}


async def test_a_private_repository_clones_and_pushes_and_the_token_is_found_nowhere(
    api, fake_anthropic, private_host, cloudws_data_dir, caplog
):
    caplog.set_level(logging.DEBUG)
    url = private_host.make_remote("secret-project", {"app.py": "print('hello')\n"})
    fake_anthropic.on(
        "add a goodbye line",
        tool_use("Bash", {"command": "printf \"print('goodbye')\\n\" >> app.py && cat app.py"}),
        text("I added a goodbye line to **app.py**."),
    )
    with ProcessSampler(TOKEN) as sampler:
        session = await api.new_session(url)
        prompt = await api.prompt(session["id"], "Please add a goodbye line to app.py")
        done = await api.wait_until_complete(session["id"], prompt["message_id"])
    assert done["success"], done
    assert sampler.samples > 10 and sampler.agent_environs > 0, "the sampler saw the agent while it ran"
    assert sampler.found == []

    events = await api.events(session["id"])
    git_event = next(e for e in events if e["type"] == "git")
    assert git_event["pushed"] and git_event["error"] is None, git_event
    # The push landed on the host, as the host's own git sees it.
    bare = private_host.path_for("secret-project")
    shown = subprocess.run(["git", "--git-dir", str(bare), "show", f"{session['branch']}:app.py"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert shown == "print('hello')\nprint('goodbye')\n"
    assert any(r.get("user") for r in private_host.requests), "the host saw authenticated requests"
    assert any(r.get("status") == 401 for r in private_host.requests), "and asked for the token first"

    assert TOKEN not in json.dumps(events)
    assert TOKEN not in caplog.text
    work_configs = list(cloudws_data_dir.glob("sandboxes/*/box/repo/.git/config"))
    assert work_configs and all(TOKEN not in p.read_text() and "@" not in p.read_text() for p in work_configs)
    daemon_logs = list(cloudws_data_dir.glob("sandboxes/*/daemon.log"))
    assert daemon_logs and any("hub attached" in p.read_text() for p in daemon_logs)
    databases = list(cloudws_data_dir.glob("cloudws.sqlite*"))
    assert databases, "the session store is in the data directory"
    # Every file the hub and the sandbox wrote: database, daemon log, state dir, work tree, home.
    assert files_holding(cloudws_data_dir, TOKEN) == []


@pytest.mark.parametrize(
    ("github_token", "expected"),
    [
        ("", "asked for a login and the hub has sent no git credential for it (set c.GitHub.token"),
        ("ghp_notTheRightToken0123456789", "the git host refused the token for http://127.0.0.1:{port} (HTTP 401)"),
    ],
    ids=["no-token", "wrong-token"],
)
async def test_without_the_right_token_the_session_says_why_it_cannot_clone(
    api, fake_anthropic, private_host, github_token: str, expected: str
):
    url = private_host.make_remote("secret-project")
    fake_anthropic.on("say hi", text("Hi!"))
    session = await api.new_session(url)
    prompt = await api.prompt(session["id"], "Please say hi")
    done = await api.wait_until_complete(session["id"], prompt["message_id"])
    reason = expected.format(port=private_host.port)
    assert not done["success"] and reason in done["error"], done
    events = await api.events(session["id"])
    failed = [e for e in events if e["type"] == "sandbox_status" and e["status"] == "failed"]
    assert failed and reason in failed[0]["detail"]
    dumped = json.dumps(events)
    assert "could not read Username" not in dumped
    assert not github_token or github_token not in dumped
    code, body = await api.get(f"sessions/{session['id']}")
    assert body["sandbox_status"] == "failed"



async def test_a_private_repository_prebuilds_and_a_session_fetches_from_its_image(
    api, fake_anthropic, private_host, cloudws_data_dir
):
    url = private_host.make_remote("secret-project", {"README.md": "# secret\n", ".cloudws/setup.sh": "echo ok\n"})
    code, build = await api.post("prebuilds", {"repo": url, "branch": "main"})
    assert code == 202, build
    deadline_s = time.monotonic() + 120
    while build["status"] == "building" and time.monotonic() < deadline_s:
        await asyncio.sleep(0.1)
        code, build = await api.get(f"prebuilds/{build['id']}")
    assert build["status"] == "ready", build
    assert ("clone", "done") in [(s["step"], s["state"]) for s in build["steps"]]

    fake_anthropic.on("say hi", text("Hi!"))
    session = await api.new_session(url, base_branch="main")
    prompt = await api.prompt(session["id"], "Please say hi")
    done = await api.wait_until_complete(session["id"], prompt["message_id"])
    assert done["success"], done
    events = await api.events(session["id"])
    progress = [(e["step"], e["state"]) for e in events if e["type"] == "sandbox_progress"]
    assert ("fetch", "done") in progress and ("clone", "running") not in progress, progress
    assert TOKEN not in json.dumps(events) and TOKEN not in json.dumps(build)
    # The image every session of the repository starts from holds no token either.
    assert files_holding(cloudws_data_dir, TOKEN) == []
