"""The runtime daemon on its own: it ends itself when no hub comes back, and a fresh sandbox
resumes the session's conversation (real Claude Code CLI against the fake API)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from daemon_support import served
from support import make_bare_repo

import cloudws_sandbox
from cloudws_sandbox.conversation import STATE_FILE, project_slug
from cloudws_sandbox.daemon import Daemon, DaemonConfig
from cloudws_sandbox.idle import IDLE_TIMEOUT_ENV
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text
from jupyter_cloudws.testing.pytest_plugin import claude_env_for

RUNTIME_ROOT = str(Path(cloudws_sandbox.__file__).resolve().parent.parent)
AGENT_ID = "0a64d78a-c776-412b-98ac-172bfe165476"


def events(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "events.jsonl").read_text().splitlines()]


def test_a_daemon_whose_hub_never_comes_ends_itself(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    DaemonConfig(session_id="s" * 32, repo=str(make_bare_repo(tmp_path)), branch="cloudws/idle",
                 cli_path="/bin/false", workdir=str(state / "repo")).save(state / "config.json")  # fmt: skip
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": RUNTIME_ROOT, "HOME": str(tmp_path),
           "CLAUDE_CONFIG_DIR": str(tmp_path / "conv"), IDLE_TIMEOUT_ENV: "0.5"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-S", "-m", "cloudws_sandbox", "serve", "--state-dir", str(state)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert code == 0
    stopped = events(state)[-1]
    assert stopped["type"] == "sandbox_status" and stopped["status"] == "stopped"
    assert stopped["detail"].startswith("idle: no hub connected and no prompt for 0.5 s")


class Run:
    """An in-process daemon with a connected bridge: ``call(op, until)`` sends one op and returns
    the frames up to the first that ``until`` accepts; ``serving`` ends with the daemon."""

    def __init__(self, daemon: Daemon, serving: asyncio.Task[None]) -> None:
        self.daemon = daemon
        self.serving = serving
        self.call: Callable[..., Any]
        self.writer: asyncio.StreamWriter


@asynccontextmanager
async def daemon_running(state: Path, config: DaemonConfig) -> AsyncIterator[Run]:
    state.mkdir(parents=True, exist_ok=True)
    daemon = Daemon(config, state, state / "bridge.sock")
    async with served(daemon, state / "bridge.sock") as connected:
        run = Run(daemon, connected.serving)
        reader, writer = connected.reader, connected.writer

        async def call(op: dict[str, Any], until: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
            writer.write((json.dumps(op) + "\n").encode())
            frames: list[dict[str, Any]] = []
            while not frames or not until(frames[-1]):
                frames.append(json.loads(await asyncio.wait_for(reader.readline(), 90)))
            return frames

        run.call, run.writer = call, writer
        await call({"op": "attach", "after": 0}, lambda f: f.get("kind") == "attached")
        yield run


async def test_a_connected_hub_holds_the_daemon_and_its_leaving_starts_the_count(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(IDLE_TIMEOUT_ENV, "0.2")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "conv"))
    state = tmp_path / "state"
    config = DaemonConfig(session_id="s" * 32, repo=str(make_bare_repo(tmp_path)), branch="cloudws/idle",
                          cli_path="/bin/false", workdir=str(state / "repo"))  # fmt: skip
    async with daemon_running(state, config) as run:
        await run.call({"op": "ping"}, lambda f: f.get("kind") == "pong")
        verdict = run.daemon.idle.verdict()
        assert not verdict.stop and verdict.check_in_s is None, "no end is even scheduled while a hub is there"
        run.writer.close()  # the hub leaves: the count starts, and the daemon ends itself
        await asyncio.wait_for(asyncio.shield(run.serving), 30)
    assert events(state)[-1]["detail"].startswith("idle: no hub connected and no prompt for 0.2 s")


def completed(frame: dict[str, Any]) -> bool:
    return frame.get("kind") == "event" and frame["event"]["type"] == "execution_complete"


def prompt(message_id: str, text_: str) -> dict[str, Any]:
    return {"op": "prompt", "message_id": message_id, "text": text_, "model": None, "author": {}}


@pytest.fixture
def agent_env(fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch) -> Path:
    """The daemon's environment as a backend sets it: the CLI offline against the fake, and the
    session's conversation dir as CLAUDE_CONFIG_DIR (returned)."""
    for name, value in claude_env_for(fake_anthropic.url, tmp_path / "env").items():
        monkeypatch.setenv(name, value)
    conversation = tmp_path / "conversations" / "session-1"
    conversation.mkdir(parents=True)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(conversation))
    return conversation


def sandbox_config(tmp_path: Path, repo: Path, cli: Path, name: str) -> tuple[Path, DaemonConfig]:
    state = tmp_path / "sandboxes" / name
    return state, DaemonConfig(session_id="s" * 32, repo=str(repo), branch="cloudws/resume", cli_path=str(cli),
                               workdir=str(state / "repo"))  # fmt: skip


async def test_a_fresh_sandbox_at_another_path_resumes_the_conversation(
    tmp_path: Path, agent_env: Path, fake_anthropic: FakeAnthropic, claude_cli_path: Path
) -> None:
    fake_anthropic.on("remember the word", text("I will remember **pelican**."))
    fake_anthropic.on("which word", text("The word was pelican."))
    repo = make_bare_repo(tmp_path)
    state, config = sandbox_config(tmp_path, repo, claude_cli_path, "first")
    async with daemon_running(state, config) as run:
        done = (await run.call(prompt("m1", "Please remember the word pelican"), completed))[-1]["event"]
        assert done["success"], done
    saved = json.loads((agent_env / STATE_FILE).read_text())["agent_session_id"]
    (first,) = (agent_env / "projects").glob(f"*/{saved}.jsonl")  # where the CLI wrote it
    assert first.parent.name == project_slug(config.workdir)

    state, config = sandbox_config(tmp_path, repo, claude_cli_path, "second")  # another work tree path
    async with daemon_running(state, config) as run:
        frames = await run.call(prompt("m2", "Now: which word did I ask you to remember?"), completed)
        assert frames[-1]["event"]["success"], frames[-1]
    sent = repr(fake_anthropic.main_requests()[-1]["body"]["messages"])
    assert "Please remember the word pelican" in sent and "I will remember **pelican**." in sent
    assert not [f for f in frames if f.get("kind") == "event" and f["event"]["type"] == "error"]
    assert json.loads((agent_env / STATE_FILE).read_text())["agent_session_id"] == saved, "the same conversation"
    (moved,) = (agent_env / "projects").glob(f"*/{saved}.jsonl")
    assert moved.parent.name == project_slug(config.workdir) != first.parent.name, "moved for the new work tree"


@pytest.mark.parametrize(
    ("transcript", "reason"),
    [
        (None, "its transcript is missing"),
        # Passes the check the daemon makes before starting the CLI, which then refuses it.
        ('junk "type":"user" junk\n', "No conversation found with session ID"),
    ],
)
async def test_a_conversation_that_cannot_be_resumed_is_noted_and_the_prompt_still_runs(
    tmp_path: Path, agent_env: Path, fake_anthropic: FakeAnthropic, claude_cli_path: Path,
    transcript: str | None, reason: str,
) -> None:  # fmt: skip
    fake_anthropic.on("say hi", text("Hi!"))
    (agent_env / STATE_FILE).write_text(json.dumps({"agent_session_id": AGENT_ID}))
    if transcript is not None:
        (agent_env / "projects" / "-old-sandbox").mkdir(parents=True)
        (agent_env / "projects" / "-old-sandbox" / f"{AGENT_ID}.jsonl").write_text(transcript)
    state, config = sandbox_config(tmp_path, make_bare_repo(tmp_path), claude_cli_path, "only")
    async with daemon_running(state, config) as run:
        frames = await run.call(prompt("m1", "say hi"), completed)
    logged = [f["event"] for f in frames if f.get("kind") == "event"]
    notes = [e for e in logged if e["type"] == "error"]
    assert len(notes) == 1 and notes[0]["code"] == "conversation_not_resumed", logged
    assert reason in notes[0]["message"]
    assert [e["text"] for e in logged if e["type"] == "assistant_text"] == ["Hi!"]
    assert logged[-1]["success"] is True, "a lost conversation never fails the prompt"
    fresh = json.loads((agent_env / STATE_FILE).read_text())["agent_session_id"]
    assert fresh not in (None, AGENT_ID), "the fresh conversation is the one the next sandbox resumes"
