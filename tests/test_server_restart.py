"""The Jupyter server dies while Claude Code works; the agent keeps working, and the restarted
server catches up with every event, none lost and none twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import git, kill_sandboxes

from jupyter_cloudws.testing.fake_anthropic import latest_human_text, text, tool_use
from jupyter_cloudws.testing.server import ServerProcess


@pytest.fixture
def server_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "server"
    yield root
    kill_sandboxes(root / "data" / "cloudws")


def wait_for(client: httpx.Client, session_id: str, predicate: Any, timeout_s: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = client.get(f"/sessions/{session_id}/events", params={"limit": 1000}).json()["events"]
        if any(predicate(e) for e in events):
            return events
        time.sleep(0.1)
    raise AssertionError(f"timed out; events: {[(e['seq'], e['type']) for e in events]}")


def sandbox_dirs(server_root: Path) -> list[Path]:
    return sorted((server_root / "data" / "cloudws" / "sandboxes").glob("*/"))


def attaches(sandbox_dir: Path) -> int:
    """How many times a hub has attached to this sandbox's daemon (its log says so each time)."""
    return (sandbox_dir / "daemon.log").read_text(errors="replace").count("a hub attached")


def wait_until(check: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.1)


def answer_then_die(server_root: Path, config: dict[str, Any], repo: Path) -> str:
    """A server answers one prompt in a new session, then is killed; the session's id."""
    server = ServerProcess(server_root, cloudws_config=config).start()
    try:
        with server.client() as client:
            sid = client.post("/sessions", json={"repo": str(repo)}).json()["id"]
            mid = client.post(f"/sessions/{sid}/prompts", json={"text": "hello"}).json()["message_id"]
            wait_for(client, sid, lambda e: e["type"] == "execution_complete" and e["message_id"] == mid)
    finally:
        server.kill()
    return sid


def test_killing_the_server_mid_prompt_loses_nothing(server_root, sandbox_env, make_repo, fake_anthropic):
    command = "echo started > progress.txt && sleep 4 && echo finished >> progress.txt"
    fake_anthropic.on("slow job", tool_use("Bash", {"command": command, "timeout": 60000}), text("The slow job is done."))
    repo = make_repo()
    config = {"sandbox_env": sandbox_env, "local_repo_roots": [str(server_root.parent)]}

    first = ServerProcess(server_root, cloudws_config=config).start()
    try:
        with first.client() as client:
            session = client.post("/sessions", json={"repo": str(repo)}).json()
            sid = session["id"]
            message_id = client.post(f"/sessions/{sid}/prompts", json={"text": "run the slow job"}).json()["message_id"]
            wait_for(client, sid, lambda e: e["type"] == "tool_call" and e["status"] == "running")
    finally:
        first.kill()
    daemon_pids = sorted(p.read_text() for p in (server_root / "data" / "cloudws" / "sandboxes").glob("*/daemon.pid"))
    (sandbox_dir,) = sandbox_dirs(server_root)
    attached_before = attaches(sandbox_dir)

    time.sleep(1)  # the agent goes on alone for a while
    second = ServerProcess(server_root, cloudws_config=config).start()
    try:
        with second.client() as client:
            events = wait_for(
                client, sid, lambda e: e["type"] == "execution_complete" and e["message_id"] == message_id
            )
            session = client.get(f"/sessions/{sid}").json()
    finally:
        second.stop()

    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "no gap and no duplicate in the session log"
    calls = [(e["call_id"], e["status"]) for e in events if e["type"] == "tool_call"]
    assert len(calls) == 2 and len(set(calls)) == 2 and calls[1][1] == "completed"
    types = [e["type"] for e in events]
    assert types.count("user_message") == 1 and types.count("execution_complete") == 1
    assert [e["text"] for e in events if e["type"] == "assistant_text"] == ["The slow job is done."]
    assert events[-1]["success"] is True
    assert session["status"] == "idle" and session["sandbox_status"] == "ready"
    # The same sandbox finished the work: the server reattached, it did not start another.
    assert sorted(p.read_text() for p in (server_root / "data" / "cloudws" / "sandboxes").glob("*/daemon.pid")) == (
        daemon_pids
    )
    assert sandbox_dirs(server_root) == [sandbox_dir] and attaches(sandbox_dir) > attached_before
    assert [e["status"] for e in events if e["type"] == "sandbox_status"].count("spawning") == 1
    assert git("--git-dir", str(repo), "show", f"{session['branch']}:progress.txt").split() == ["started", "finished"]
    # The model was asked once: the prompt was not run again after the restart.
    asked = [latest_human_text(r["body"]["messages"]) for r in fake_anthropic.main_requests()]
    assert [k for human, k in asked if "run the slow job" in human] == [0, 1], "one request, one tool round trip"


def test_a_restarted_server_reports_a_sandbox_that_died_while_it_was_down(
    server_root, sandbox_env, make_repo, fake_anthropic
):
    fake_anthropic.on("hello", text("Hello!"))
    config = {"sandbox_env": sandbox_env, "local_repo_roots": [str(server_root.parent)]}
    sid = answer_then_die(server_root, config, make_repo())
    kill_sandboxes(server_root / "data" / "cloudws")

    second = ServerProcess(server_root, cloudws_config=config).start()
    try:
        with second.client() as client:
            wait_for(client, sid, lambda e: e["type"] == "sandbox_status" and e["status"] == "failed")
            mid2 = client.post(f"/sessions/{sid}/prompts", json={"text": "hello again"}).json()["message_id"]
            events = wait_for(client, sid, lambda e: e["type"] == "execution_complete" and e["message_id"] == mid2)
    finally:
        second.stop()
    assert events[-1]["success"] is True
    statuses = [e["status"] for e in events if e["type"] == "sandbox_status"]
    after_death = statuses[len(statuses) - 1 - statuses[::-1].index("failed") + 1:]
    # A fresh sandbox: cloned, or restored from the snapshot taken after the first answer, if
    # the first server lived long enough to take it.
    steps = [(e["step"], e["state"]) for e in events if e["type"] == "sandbox_progress"]
    if ("restore", "done") in steps:
        assert after_death == ["spawning", "ready"]
    else:
        assert after_death == ["spawning", "cloning", "ready"]


def test_a_restarted_server_reattaches_to_an_idle_sandbox(server_root, sandbox_env, make_repo, fake_anthropic):
    fake_anthropic.on("hello", text("Hello!"))
    config = {"sandbox_env": sandbox_env, "local_repo_roots": [str(server_root.parent)]}
    sid = answer_then_die(server_root, config, make_repo())
    (sandbox_dir,) = sandbox_dirs(server_root)
    pid = (sandbox_dir / "daemon.pid").read_text()
    attached_before = attaches(sandbox_dir)

    second = ServerProcess(server_root, cloudws_config=config).start()
    try:
        # The new server reattaches on its own, with no prompt to send: the daemon that answered
        # before (same directory, same pid) logs a second hub. Only then is it killed, so the
        # death can only be noticed through that bridge, not by a check made at startup.
        wait_until(lambda: attaches(sandbox_dir) > attached_before, "a reattach")
        assert sandbox_dirs(server_root) == [sandbox_dir] and (sandbox_dir / "daemon.pid").read_text() == pid
        kill_sandboxes(server_root / "data" / "cloudws")
        with second.client() as client:
            # Only a hub holding the bridge notices the death while nothing runs.
            events = wait_for(client, sid, lambda e: e["type"] == "sandbox_status" and e["status"] == "failed",
                              timeout_s=20)  # fmt: skip
    finally:
        second.stop()
    assert [e["type"] for e in events].count("execution_complete") == 1
    assert [e["status"] for e in events if e["type"] == "sandbox_status"].count("spawning") == 1, "no second sandbox"
