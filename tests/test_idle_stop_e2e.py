"""Idle sandboxes go: a real jupyter-server, local sandboxes running the real Claude Code CLI
against the fake API, and a tiny idle timeout."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support import eventually, kill_sandboxes, sandbox_commands

from cloudws_sandbox.idle import IDLE_TIMEOUT_ENV
from cloudws_sandbox.protocol import PromptRequest
from jupyter_cloudws.backends.base import SandboxBackend
from jupyter_cloudws.hub import HubSettings, Requester, SessionHub
from jupyter_cloudws.store import SessionStore
from jupyter_cloudws.testing.fake_anthropic import text, tool_use
from jupyter_cloudws.testing.server import ServerProcess


def sandbox_statuses(events: list[dict]) -> list[str]:
    return [e["status"] for e in events if e["type"] == "sandbox_status"]


@pytest.mark.parametrize("cloudws_config", [{"sandbox_idle_timeout_s": 0.5}])
async def test_an_idle_sandbox_stops_and_the_next_prompt_starts_a_fresh_one(
    api, make_repo, fake_anthropic, cloudws_data_dir: Path
):
    # The first prompt outlasts the idle timeout: a running prompt is never stopped as idle.
    command = "python3 -c 'import time; time.sleep(1.5)' && echo rested"
    fake_anthropic.on("rest a while", tool_use("Bash", {"command": command}), text("Rested."))
    fake_anthropic.on("say hi", text("Hi!"))
    session = await api.new_session(make_repo())
    sid = session["id"]
    first = await api.prompt(sid, "Please rest a while")
    assert (await api.wait_until_complete(sid, first["message_id"]))["success"] is True

    stopped = await api.wait_for_event(sid, lambda e: e["type"] == "sandbox_status" and e["status"] == "stopped", 30)
    assert stopped["detail"].startswith("idle: no prompt for 0.5 s")
    assert await eventually(lambda: sandbox_commands(cloudws_data_dir) == [], 10), "its processes ended"
    code, now = await api.get(f"sessions/{sid}")
    assert (now["status"], now["sandbox_status"]) == ("idle", "stopped")
    conversation = cloudws_data_dir / "conversations" / sid
    assert conversation.stat().st_mode & 0o777 == 0o700, "the conversation is the user's alone"

    second = await api.prompt(sid, "Now say hi")
    assert (await api.wait_until_complete(sid, second["message_id"]))["success"] is True
    statuses = sandbox_statuses(await api.events(sid))
    assert statuses[:4] == ["spawning", "cloning", "ready", "stopped"] and statuses.count("spawning") == 2
    assert "failed" not in statuses, "an idle stop is no failure"


def test_the_hub_hands_the_runtime_its_timeout_and_a_private_conversation_dir(tmp_path: Path) -> None:
    def hub(**settings: object) -> SessionHub:
        return SessionHub(SessionStore(tmp_path / "db.sqlite"), SandboxBackend(), HubSettings(**settings))

    # The runtime waits a grace longer than the hub would: it ends alone only when no hub came.
    assert hub(sandbox_idle_timeout_s=600.0).sandbox_env()[IDLE_TIMEOUT_ENV] == "660"
    assert IDLE_TIMEOUT_ENV not in hub(sandbox_idle_timeout_s=0.0).sandbox_env(), "0: the runtime never ends alone"
    assert hub(data_dir="").conversation_dir("s1") is None, "no data dir: each sandbox keeps its own"
    path = Path(hub(data_dir=str(tmp_path)).conversation_dir("s1") or "")
    assert path == tmp_path / "conversations" / "s1" and path.is_dir()
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o700, 0o700)


def test_a_sandbox_whose_server_is_gone_for_good_ends_itself(tmp_path: Path, sandbox_env, make_repo, fake_anthropic):
    fake_anthropic.on("hello", text("Hello!"))
    root = tmp_path / "server"
    data_dir = root / "data" / "cloudws"
    # The hub never stops it here (0), so only the runtime's own timeout, set short, can end it.
    config = {"sandbox_env": {**sandbox_env, IDLE_TIMEOUT_ENV: "1"}, "sandbox_idle_timeout_s": 0,
              "local_repo_roots": [str(tmp_path)]}  # fmt: skip
    server = ServerProcess(root, cloudws_config=config).start()
    try:
        with server.client() as client:
            sid = client.post("/sessions", json={"repo": str(make_repo())}).json()["id"]
            mid = client.post(f"/sessions/{sid}/prompts", json={"text": "hello"}).json()["message_id"]
            deadline = time.monotonic() + 90
            while not any(e["type"] == "execution_complete" and e["message_id"] == mid
                          for e in client.get(f"/sessions/{sid}/events").json()["events"]):  # fmt: skip
                assert time.monotonic() < deadline, "the prompt did not complete"
                time.sleep(0.1)
        assert sandbox_commands(data_dir), "the sandbox runs while its server is there"
    finally:
        server.kill()  # and never restarted
    try:
        deadline = time.monotonic() + 30
        while (left := sandbox_commands(data_dir)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], f"still running without a server: {[c[-100:] for c in left]}"
    finally:
        kill_sandboxes(data_dir)



class Clock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


async def test_typing_counts_as_activity_and_the_stop_comes_a_whole_timeout_after_it(
    api, open_socket, make_repo, fake_anthropic, jp_serverapp, cloudws_data_dir: Path
):
    fake_anthropic.on("hello", text("Hello!"))
    session = await api.new_session(make_repo())
    sid = session["id"]
    first = await api.prompt(sid, "hello")
    await api.wait_until_complete(sid, first["message_id"])
    runner = jp_serverapp.web_app.settings["cloudws_hub"].runner(sid)
    assert runner.idle.timeout_s == 600, "the default"
    # The snapshot taken after the prompt holds the idle timer while it runs: let it finish first.
    assert await eventually(lambda: not runner.snapshots.busy, 30), "the snapshot after the prompt ended"
    # Time is the test's from here: the runner decides with this clock, its real timer stays far off.
    clock = runner.idle.clock = Clock(runner.idle.last_activity_s)
    sock = await open_socket(sid)

    clock.now_s += 599
    runner.idle.check()
    await sock.send({"type": "typing"})
    await sock.send({"type": "ping"})
    await sock.until(lambda f: f["type"] == "pong")  # frames are handled in order: typing was seen
    assert runner.idle.last_activity_s == clock.now_s, "typing is activity"
    clock.now_s += 599
    runner.idle.check()
    assert runner.idle.next_check_s == 1, "599 s after the typing: not idle yet, due in a second"
    clock.now_s += 1
    runner.idle.check()  # due: the stop is on its way, but a prompt comes first
    hub = jp_serverapp.web_app.settings["cloudws_hub"]
    owner = Requester(session["owner"])
    again = hub.submit_prompt(sid, PromptRequest("hello again"), {"username": owner.username}, owner)
    assert (await api.wait_until_complete(sid, again["message_id"]))["success"] is True
    statuses = [e["status"] for e in await api.events(sid) if e["type"] == "sandbox_status"]
    assert "stopped" not in statuses and statuses.count("spawning") == 1, "the stop gave way to the prompt"

    clock.now_s += 600
    runner.idle.check()
    stopped = await api.wait_for_event(sid, lambda e: e["type"] == "sandbox_status" and e["status"] == "stopped", 30)
    assert stopped["detail"].startswith("idle: no prompt for 600 s")
    assert await eventually(lambda: sandbox_commands(cloudws_data_dir) == [], 10)
