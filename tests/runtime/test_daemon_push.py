"""The ``push`` op over the daemon's real bridge socket against a local bare origin: work left
uncommitted is committed and the branch pushed, a push while a prompt runs is refused as busy,
and a push the origin refuses is reported in its ``git`` event, then goes through once it accepts."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from daemon_support import served
from support import git, make_bare_repo

from cloudws_sandbox.daemon import Daemon, DaemonConfig
from cloudws_sandbox.normalize import TurnEnd
from cloudws_sandbox.protocol import bridge_attach, bridge_prompt, bridge_push, parse_bridge_reply

BRANCH = "cloudws/test"
ADA = {"username": "ada", "name": "Ada Lovelace", "email": "ada@example.test"}
REFUSING_HOOK = "#!/bin/sh\necho 'pushes to this repository are paused' >&2\nexit 1\n"


class Bridge:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.frames: list[dict[str, Any]] = []

    def send(self, frame: dict[str, Any]) -> None:
        self.writer.write((json.dumps(frame) + "\n").encode())

    async def until(self, predicate: Any, timeout_s: float = 60.0) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            while True:
                line = await self.reader.readline()
                assert line, "the daemon hung up"
                frame = parse_bridge_reply(line)  # what the hub would take: the ack's fields checked
                self.frames.append(frame)
                if predicate(frame):
                    return frame

        return await asyncio.wait_for(read(), timeout_s)

    def event(self, seq: int) -> dict[str, Any]:
        return next(f["event"] for f in self.frames if f["kind"] == "event" and f["event"]["seq"] == seq)

    async def push(self, request_id: str) -> dict[str, Any]:
        self.send(bridge_push(request_id, ADA))
        return await self.until(lambda f: f["kind"] == "ack" and f.get("request_id") == request_id)


@asynccontextmanager
async def ready_daemon(tmp_path: Path, origin: Path) -> AsyncIterator[tuple[Daemon, Bridge, Path]]:
    state = tmp_path / "state"
    state.mkdir()
    # No agent is needed: /bin/false stands in for the CLI; a push never involves it.
    config = DaemonConfig(session_id="s" * 32, repo=str(origin), branch=BRANCH, cli_path="/bin/false",
                          workdir=str(state / "repo"))  # fmt: skip
    daemon = Daemon(config, state, tmp_path / "bridge.sock")
    async with served(daemon, tmp_path / "bridge.sock", stop_timeout_s=15) as run:
        bridge = Bridge(run.reader, run.writer)
        bridge.send(bridge_attach(0))
        ready = await bridge.until(lambda f: f["kind"] == "event" and f["event"]["type"] == "sandbox_status"
                                   and f["event"]["status"] in ("ready", "failed"))  # fmt: skip
        assert ready["event"]["status"] == "ready", ready
        yield daemon, bridge, state / "repo"


def origin_sha(origin: Path) -> str:
    """The session branch as the origin has it; "" when it has none."""
    found = subprocess.run(["git", "--git-dir", str(origin), "rev-parse", "--verify", "--quiet", f"refs/heads/{BRANCH}"],
                           capture_output=True, text=True)  # fmt: skip
    return found.stdout.strip()


async def test_push_commits_what_was_left_and_pushes_the_branch(tmp_path: Path) -> None:
    origin = make_bare_repo(tmp_path)
    async with ready_daemon(tmp_path, origin) as (_daemon, bridge, work):
        before = git("rev-parse", "HEAD", cwd=work)
        (work / "hello.py").write_text("print('hello')\n")  # as a prompt whose commit failed leaves it

        ack = await bridge.push("r1")
        assert (ack["result"], ack["message"]) == ("done", ""), ack
        event = bridge.event(ack["seq"])
        sha = git("rev-parse", "HEAD", cwd=work)
        assert sha != before
        assert {k: event[k] for k in ("type", "branch", "sha", "pushed", "committed", "message_id", "error", "before",
                                      "files", "files_total")} == {
            "type": "git", "branch": BRANCH, "sha": sha, "pushed": True, "committed": True, "message_id": None,
            "error": None, "before": before,
            "files": [{"path": "hello.py", "status": "added", "additions": 1, "deletions": 0}], "files_total": 1,
        }  # fmt: skip
        assert origin_sha(origin) == sha
        subject, author = git("log", "-1", "--format=%s%n%an <%ae>", sha, cwd=work).splitlines()
        assert "for a pull request" in subject
        assert author == "Ada Lovelace <ada@example.test>"

        # Nothing left to commit: the branch is pushed as it is, and the event says nothing was committed.
        ack = await bridge.push("r2")
        event = bridge.event(ack["seq"])
        assert (ack["result"], event["sha"], event["pushed"], event["committed"], event["files"]) == (
            "done", sha, True, False, [])  # fmt: skip


async def test_a_push_while_a_prompt_runs_is_refused_as_busy(tmp_path: Path) -> None:
    origin = make_bare_repo(tmp_path)
    async with ready_daemon(tmp_path, origin) as (daemon, bridge, work):
        release = asyncio.Event()

        async def held_turn(op: dict[str, Any]) -> TurnEnd:  # the agent works until the test lets it end
            (work / "notes.md").write_text("notes\n")
            await release.wait()
            return TurnEnd(True, None, None, {}, None, None, None)

        daemon._run_turn = held_turn  # type: ignore[method-assign]
        bridge.send(bridge_prompt("m1", "write notes", None, ADA))
        await bridge.until(lambda f: f["kind"] == "ack" and f.get("op") == "prompt")
        ack = await bridge.push("r1")
        assert (ack["result"], ack["seq"]) == ("busy", None), ack
        assert "a prompt is running" in ack["message"]
        assert origin_sha(origin) == "", "the busy push pushed nothing"

        release.set()
        await bridge.until(lambda f: f["kind"] == "event" and f["event"]["type"] == "execution_complete")
        ack = await bridge.push("r2")  # the prompt is over: now it runs
        assert ack["result"] == "done" and bridge.event(ack["seq"])["pushed"] is True


async def test_a_push_the_origin_refuses_is_reported_then_goes_through_when_it_accepts(tmp_path: Path) -> None:
    origin = make_bare_repo(tmp_path)
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(REFUSING_HOOK)
    hook.chmod(0o755)
    async with ready_daemon(tmp_path, origin) as (_daemon, bridge, work):
        (work / "hello.py").write_text("print('hello')\n")
        ack = await bridge.push("r1")
        failed = bridge.event(ack["seq"])
        assert ack["result"] == "done" and ack["message"] == failed["error"]
        assert (failed["pushed"], failed["committed"]) == (False, True)
        assert failed["error"].startswith("git push failed") and "pushes to this repository are paused" in failed["error"]
        assert origin_sha(origin) == ""

        hook.unlink()  # the host accepts pushes again
        ack = await bridge.push("r2")
        pushed = bridge.event(ack["seq"])
        assert (pushed["pushed"], pushed["committed"], pushed["error"], pushed["sha"]) == (True, False, None, failed["sha"])
        assert origin_sha(origin) == failed["sha"]
