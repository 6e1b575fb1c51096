"""The sandbox daemon over its real bridge socket: a Stop that arrives while the repository is
still cloning ends the prompt before the agent ever sees it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from support import make_bare_repo

from cloudws_sandbox import daemon as daemon_module
from cloudws_sandbox.daemon import Daemon, DaemonConfig


async def read_until(reader: asyncio.StreamReader, predicate, timeout_s: float = 30.0) -> list[dict]:
    frames: list[dict] = []
    async def read() -> None:
        while True:
            frame = json.loads(await reader.readline())
            frames.append(frame)
            if predicate(frame):
                return
    await asyncio.wait_for(read(), timeout_s)
    return frames


async def test_a_stop_during_the_clone_ends_the_prompt_before_it_starts(tmp_path: Path, monkeypatch):
    release_clone = asyncio.Event()
    real_clone = daemon_module.gitops.clone

    async def slow_clone(repo: str, dest: str) -> None:
        await release_clone.wait()  # the clone takes as long as the test wants
        await real_clone(repo, dest)

    monkeypatch.setattr(daemon_module.gitops, "clone", slow_clone)
    state = tmp_path / "state"
    state.mkdir()
    config = DaemonConfig(session_id="s" * 32, repo=str(make_bare_repo(tmp_path)), branch="cloudws/test",
                          cli_path="/bin/false", workdir=str(state / "repo"))  # fmt: skip
    # No agent is needed: /bin/false stands in for the CLI, and the prompt must never reach it.
    daemon = Daemon(config, state, tmp_path / "bridge.sock")
    serving = asyncio.get_running_loop().create_task(daemon.serve())
    try:
        for _ in range(100):
            if (tmp_path / "bridge.sock").exists():
                break
            await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "bridge.sock"))
        send = lambda frame: writer.write((json.dumps(frame) + "\n").encode())  # noqa: E731
        send({"op": "attach", "after": 0})
        send({"op": "prompt", "message_id": "m1", "text": "change things", "model": None, "author": {}})
        await read_until(reader, lambda f: f.get("kind") == "ack" and f.get("op") == "prompt")
        send({"op": "interrupt"})
        await read_until(reader, lambda f: f.get("kind") == "ack" and f.get("op") == "interrupt")
        release_clone.set()
        frames = await read_until(
            reader, lambda f: f.get("kind") == "event" and f["event"]["type"] == "execution_complete"
        )
        done = frames[-1]["event"]
        assert done["message_id"] == "m1" and done["interrupted"] is True and done["success"] is False
        assert done["error"] == "stopped before it started"
        types = [f["event"]["type"] for f in frames if f.get("kind") == "event"]
        assert "tool_call" not in types and "assistant_text" not in types
        writer.close()
    finally:
        daemon._stopping.set()
        await asyncio.wait_for(serving, 10)
