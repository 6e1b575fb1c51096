"""The sandbox daemon over its real bridge socket: a Stop that arrives while the repository is
still cloning ends the prompt before the agent ever sees it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from daemon_support import served
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

    async def slow_clone(repo: str, dest: str, auth: object = None) -> None:
        await release_clone.wait()  # the clone takes as long as the test wants
        await real_clone(repo, dest, auth)

    monkeypatch.setattr(daemon_module.gitops, "clone", slow_clone)
    state = tmp_path / "state"
    state.mkdir()
    config = DaemonConfig(session_id="s" * 32, repo=str(make_bare_repo(tmp_path)), branch="cloudws/test",
                          cli_path="/bin/false", workdir=str(state / "repo"))  # fmt: skip
    # No agent is needed: /bin/false stands in for the CLI, and the prompt must never reach it.
    daemon = Daemon(config, state, tmp_path / "bridge.sock")
    async with served(daemon, tmp_path / "bridge.sock", stop_timeout_s=10) as run:
        reader, writer = run.reader, run.writer
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


async def serve_connections(tmp_path: Path, outbox_max_bytes: int) -> tuple[Daemon, asyncio.Server, str]:
    """A daemon's bridge connections alone: no clone, no agent; the test appends the events."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    config = DaemonConfig(session_id="s" * 32, repo="unused", branch="cloudws/test", cli_path="/bin/false",
                          workdir=str(state / "repo"))  # fmt: skip
    sock = str(tmp_path / "bridge.sock")
    daemon = Daemon(config, state, Path(sock), outbox_max_bytes=outbox_max_bytes)
    server = await asyncio.start_unix_server(daemon._on_connection, path=sock)
    return daemon, server, sock


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then read until the daemon has closed its end: its handler is done."""
    writer.write_eof()
    while await asyncio.wait_for(reader.readline(), 30):
        pass
    writer.close()


def write_log(path: Path, n: int, text_chars: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for seq in range(1, n + 1):
            fh.write(json.dumps({"seq": seq, "ts": 1.0, "type": "assistant_text", "message_id": "m1",
                                 "text": "x" * text_chars, "index": seq}) + "\n")  # fmt: skip


async def test_a_hub_that_falls_too_far_behind_is_cut_off_and_resumes_on_a_new_connection(tmp_path: Path):
    daemon, server, sock = await serve_connections(tmp_path, outbox_max_bytes=4096)
    try:
        for i in range(3):
            daemon.log.append({"type": "sandbox_status", "status": "ready", "detail": str(i)})
        reader, writer = await asyncio.open_unix_connection(sock)
        # This hub keeps asking and never reads: the answers fill the socket, then the outbox.
        sent = 0
        try:
            for _ in range(100):
                writer.write(b'{"op":"ping"}\n' * 1000)
                sent += 1000
                await writer.drain()
        except ConnectionError:
            pass  # the daemon hung up on it
        pongs = 0

        async def read_to_the_end() -> bool:
            nonlocal pongs
            while pongs < sent:
                try:
                    line = await reader.readline()
                except ConnectionError:
                    return True  # closed by the daemon (our own last write noticed first)
                if not line:
                    return True  # closed by the daemon
                pongs += json.loads(line)["kind"] == "pong"
            return False

        assert await asyncio.wait_for(read_to_the_end(), 60), f"all {sent} answers were held for a stalled hub"
        assert pongs < sent
        writer.close()

        # The hub comes back with the last seq it stored and gets the rest.
        reader, writer = await asyncio.open_unix_connection(sock)
        writer.write(b'{"op":"attach","after":1}\n')
        frames = await read_until(reader, lambda f: f.get("kind") == "event" and f["event"]["seq"] == 3)
        assert [f["event"]["seq"] for f in frames if f["kind"] == "event"] == [2, 3]
        await hang_up(reader, writer)
        assert not daemon._bridges
    finally:
        server.close()
        daemon.log.close()


async def test_a_long_replay_streams_from_disk_past_the_outbox_bound_then_goes_live(tmp_path: Path):
    (tmp_path / "state").mkdir()
    write_log(tmp_path / "state" / "events.jsonl", 3000, text_chars=1000)  # 3 MB; the outbox holds 4 KB
    daemon, server, sock = await serve_connections(tmp_path, outbox_max_bytes=4096)
    try:
        reader, writer = await asyncio.open_unix_connection(sock)
        writer.write(b'{"op":"attach","after":0}\n{"op":"ping"}\n')
        frames = await read_until(reader, lambda f: f.get("kind") == "event" and f["event"]["seq"] == 3000)
        kinds = [f["kind"] for f in frames]
        assert kinds[0] == "attached" and frames[0]["last_seq"] == 3000
        assert [f["event"]["seq"] for f in frames if f["kind"] == "event"] == list(range(1, 3001))
        assert 0 < kinds.index("pong") < len(kinds) - 1, "the answer did not wait for the whole replay"
        daemon.log.append({"type": "sandbox_status", "status": "ready"})
        (live,) = await read_until(reader, lambda f: f.get("kind") == "event")
        assert live["event"]["seq"] == 3001
        assert not any(b.overflowed for b in daemon._bridges)
        await hang_up(reader, writer)
    finally:
        server.close()
        daemon.log.close()
