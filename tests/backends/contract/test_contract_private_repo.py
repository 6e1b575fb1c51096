"""Contract: a private repository (a token-protected git host, ``c.GitHub.token``) clones and
pushes on every backend, the token going over the bridge to the sandbox's credential helper
(on Modal, over the exec'd ``attach`` stdio), and it is in none of the files the server and its
sandboxes write."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract_helpers import Case, Hub

from jupyter_cloudws.testing.fake_anthropic import text, tool_use
from jupyter_cloudws.testing.git_http import GitHttpServer

TOKEN = "ghp_contractPrivateToken0123456789abc"


@pytest.fixture
def private_git(tmp_path: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "private-git", token=TOKEN) as server:
        yield server


def test_a_private_repository_clones_and_pushes_with_the_token(case: Case, private_git: GitHttpServer, hub_of) -> None:
    server = case.server("private", sections={"GitHub": {"url": private_git.url, "token": TOKEN}}).start()
    try:
        ask = case.phrase("write the secret notes")
        case.fake.on(ask, tool_use("Bash", {"command": "echo classified > notes.txt"}), text("Wrote them."))
        repo = private_git.make_remote(f"private-{case.name}")
        hub: Hub = hub_of(server)
        sid = hub.new_session(repo)
        message_id = hub.prompt(sid, ask)
        done = hub.wait_complete(sid, message_id)
        assert done["success"] is True, done
        (pushed,) = [e for e in hub.events(sid) if e["type"] == "git"]
        assert pushed["pushed"] is True and pushed["error"] is None, pushed
        bare = str(private_git.path_for(f"private-{case.name}"))
        shown = subprocess.run(["git", "--git-dir", bare, "show", f"{hub.session(sid)['branch']}:notes.txt"],
                               check=True, capture_output=True, text=True).stdout  # fmt: skip
        assert shown == "classified\n"
        assert TOKEN not in repr(hub.events(sid))
    finally:
        server.kill()
    # Everything the server and its sandboxes wrote (database, logs, sandbox state, work trees),
    # except the configuration file this test wrote the token into.
    config_file = server.root / "config" / "jupyter_server_config.json"
    holding = [str(p) for p in server.root.rglob("*") if p.is_file() and p != config_file
               and TOKEN.encode() in p.read_bytes()]  # fmt: skip
    if case.name == "modal":
        holding += [str(p) for p in (case.root / "fake-modal").rglob("*") if p.is_file() and not p.is_symlink()
                    and TOKEN.encode() in p.read_bytes()]  # fmt: skip
    assert holding == []
