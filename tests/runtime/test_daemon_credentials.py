"""The daemon over its real bridge socket with a private repository: the ``credentials`` op lets
its start-up clone, the token is redacted from what it sends, and a credential that never comes
fails the start-up with a clear reason, bounded in time."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from daemon_support import served
from cloudws_sandbox.daemon import Daemon, DaemonConfig
from cloudws_sandbox.protocol import bridge_attach, bridge_credentials
from jupyter_cloudws.testing.git_http import GitHttpServer

TOKEN = "ghp_daemonCredentialToken0123456789"


@pytest.fixture
def host(tmp_path: Path) -> GitHttpServer:
    with GitHttpServer(tmp_path / "host", token=TOKEN) as server:
        yield server


@asynccontextmanager
async def daemon_for(tmp_path: Path, repo: str, **config: object) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, Path]]:
    state = tmp_path / "state"
    state.mkdir()
    # A prebuild: the start-up clones and runs the setup script, and no agent is needed.
    daemon_config = DaemonConfig(session_id="s" * 32, repo=repo, branch="cloudws/test", cli_path="/bin/false",
                                 workdir=str(state / "repo"), prebuild=True, git_credentials=True, **config)  # fmt: skip
    daemon = Daemon(daemon_config, state, tmp_path / "bridge.sock")
    async with served(daemon, tmp_path / "bridge.sock", stop_timeout_s=15) as run:
        run.writer.write((json.dumps(bridge_attach(0)) + "\n").encode())
        yield run.reader, run.writer, state


async def frames_until_status(reader: asyncio.StreamReader, statuses: tuple[str, ...]) -> list[dict]:
    frames: list[dict] = []

    async def read() -> None:
        while True:
            frame = json.loads(await reader.readline())
            frames.append(frame)
            event = frame.get("event") or {}
            if event.get("type") == "sandbox_status" and event.get("status") in statuses:
                return

    await asyncio.wait_for(read(), 60)
    return frames


async def test_the_credentials_op_lets_the_start_up_clone_and_the_token_is_redacted_and_never_logged(
    host, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    # A setup script that prints the token (as an agent that found it might) shows it redacted.
    url = host.make_remote("private", {"README.md": "# p\n", ".cloudws/setup.sh": f"echo 'found {TOKEN}'\n"})
    async with daemon_for(tmp_path, url) as (reader, writer, state):
        credential = bridge_credentials("http", f"127.0.0.1:{host.port}", "x-access-token", TOKEN)
        writer.write((json.dumps(credential) + "\n").encode())
        frames = await frames_until_status(reader, ("ready", "failed"))
        events_bytes = (state / "events.jsonl").read_bytes()
    assert {"kind": "ack", "op": "credentials"} in frames
    events = [f["event"] for f in frames if f["kind"] == "event"]
    assert events[-1]["status"] == "ready", events
    setup_output = "".join(e["output"] for e in events if e["type"] == "sandbox_progress" and e["step"] == "setup")
    assert "found [redacted]" in setup_output
    assert TOKEN not in json.dumps(frames) and TOKEN.encode() not in events_bytes
    assert TOKEN not in caplog.text
    script = state / "repo" / ".cloudws" / "setup.sh"  # the one file that holds it: the test put it there
    assert [p for p in state.rglob("*") if p.is_file() and p != script and TOKEN.encode() in p.read_bytes()] == []


async def test_a_credential_that_never_comes_fails_the_start_up_in_bounded_time(host, tmp_path):
    url = host.make_remote("private")
    async with daemon_for(tmp_path, url, git_credentials_timeout_s=0.3) as (reader, _writer, _state):
        frames = await frames_until_status(reader, ("ready", "failed"))
    failed = [f["event"] for f in frames if f["kind"] == "event"][-1]
    assert failed["status"] == "failed"
    assert "the hub sent no git credential within 0.3 s" in failed["detail"], failed
    assert not host.requests, "nothing asked the host without the credential"
