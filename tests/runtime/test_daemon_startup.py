"""The daemon's start-up steps over its real bridge, with real git repositories: clone or
restore, fetch, the repository's setup script, the agent, each as ``sandbox_progress``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from daemon_support import served
from support import git, make_bare_repo

from cloudws_sandbox.daemon import Daemon, DaemonConfig
from cloudws_sandbox.idle import IDLE_TIMEOUT_ENV
from cloudws_sandbox.setup_script import TAIL_LINES
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text
from jupyter_cloudws.testing.pytest_plugin import claude_env_for

BRANCH = "cloudws/startup"


class Bridge:
    def __init__(self, daemon: Daemon, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.daemon, self.reader, self.writer = daemon, reader, writer
        self.events: list[dict[str, Any]] = []  # every event read so far, in order

    def send(self, op: dict[str, Any]) -> None:
        self.writer.write((json.dumps(op) + "\n").encode())

    async def until(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 90) -> dict[str, Any]:
        """Read frames up to the first event ``predicate`` accepts, and return it."""
        async def read() -> dict[str, Any]:
            while True:
                frame = json.loads(await self.reader.readline())
                if frame.get("kind") == "event":
                    self.events.append(frame["event"])
                    if predicate(frame["event"]):
                        return frame["event"]
        return await asyncio.wait_for(read(), timeout_s)

    async def ready(self) -> dict[str, Any]:
        status = await self.until(lambda e: e["type"] == "sandbox_status" and e["status"] in ("ready", "failed"))
        assert status["status"] == "ready", status
        return status

    def progress(self, step: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "sandbox_progress" and step in (None, e["step"])]


@asynccontextmanager
async def started(state: Path, config: DaemonConfig) -> AsyncIterator[Bridge]:
    state.mkdir(parents=True, exist_ok=True)
    (state / "bridge.sock").unlink(missing_ok=True)  # an earlier daemon's, in the same sandbox
    daemon = Daemon(config, state, state / "bridge.sock")
    async with served(daemon, state / "bridge.sock") as run:
        bridge = Bridge(daemon, run.reader, run.writer)
        bridge.send({"op": "attach", "after": 0})
        yield bridge


def config_for(tmp_path: Path, repo: Path, name: str = "box", **kw: Any) -> tuple[Path, DaemonConfig]:
    state = tmp_path / "sandboxes" / name
    return state, DaemonConfig(session_id="s" * 32, repo=str(repo), branch=BRANCH, cli_path="/bin/false",
                               workdir=str(state / "repo"), **kw)  # fmt: skip


def repo_with_setup(tmp_path: Path, script: str, **files: str) -> Path:
    return make_bare_repo(tmp_path, files={"README.md": "# p\n", ".cloudws/setup.sh": script, **files})


def prompt(message_id: str, text_: str) -> dict[str, Any]:
    return {"op": "prompt", "message_id": message_id, "text": text_, "model": None, "author": {}}


def steps(bridge: Bridge) -> list[tuple[str, str]]:
    return [(e["step"], e["state"]) for e in bridge.progress()]


def push_to_main(tmp_path: Path, name: str) -> str:
    """A commit on origin's main made after the sandbox (or its image) cloned it."""
    seed = tmp_path / "seeds" / "project"
    (seed / name).write_text(name)
    git("add", "--all", cwd=seed)
    git("commit", "--quiet", "-m", f"add {name}", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:main", cwd=seed)
    return git("rev-parse", "HEAD", cwd=seed)


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file each run of the test scripts appends a line to (they read it from the environment)."""
    path = tmp_path / "setup-runs.txt"
    monkeypatch.setenv("SETUP_MARKER", str(path))
    return path


def runs(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


async def test_setup_output_arrives_as_progress_in_order_before_ready(tmp_path: Path, marker: Path) -> None:
    script = 'echo "installing one"\necho "installing two" >&2\necho ran >> "$SETUP_MARKER"\necho "all set"\n'
    state, config = config_for(tmp_path, repo_with_setup(tmp_path, script))
    async with started(state, config) as bridge:
        await bridge.ready()
    assert steps(bridge)[:3] == [("clone", "running"), ("clone", "done"), ("setup", "running")]
    assert steps(bridge)[-3:] == [("setup", "done"), ("agent", "running"), ("agent", "done")]
    setup = bridge.progress("setup")
    assert "".join(e["output"] for e in setup) == "installing one\ninstalling two\nall set\n"
    assert setup[-1]["detail"] == "exit code 0" and setup[-1]["elapsed_ms"] >= setup[0]["elapsed_ms"]
    assert bridge.progress("clone")[-1]["detail"] == f"on branch {BRANCH} from main"
    types = [(e["type"], e.get("status") or e.get("step")) for e in bridge.events]
    assert types[0] == ("sandbox_status", "cloning"), "clients that know only sandbox_status still see it"
    assert types[-1] == ("sandbox_status", "ready")
    assert runs(marker) == 1


@pytest.fixture
def agent_env(fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in claude_env_for(fake_anthropic.url, tmp_path / "env").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "conversation"))


async def test_a_failing_setup_shows_its_tail_and_the_session_still_runs_prompts(
    tmp_path: Path, agent_env: None, fake_anthropic: FakeAnthropic, claude_cli_path: Path
) -> None:
    fake_anthropic.on("say hi", text("Hi!"))
    script = "for i in $(seq 1 30); do echo \"step $i\"; done\necho 'npm ERR! broken' >&2\nexit 3\n"
    state, config = config_for(tmp_path, repo_with_setup(tmp_path, script))
    config = replace(config, cli_path=str(claude_cli_path))
    async with started(state, config) as bridge:
        await bridge.ready()
        failed = bridge.progress("setup")[-1]
        assert failed["state"] == "failed" and failed["detail"] == "exit code 3"
        tail = failed["output"].split("\n")
        assert len(tail) == TAIL_LINES and tail[-1] == "npm ERR! broken" and tail[0] == "step 12"
        bridge.send(prompt("m1", "say hi"))
        done = await bridge.until(lambda e: e["type"] == "execution_complete")
    assert done["success"], done
    assert [e["text"] for e in bridge.events if e["type"] == "assistant_text"] == ["Hi!"]


async def test_a_secret_the_setup_script_prints_is_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "ghp_setupSecretValue0123456789"
    monkeypatch.setenv("CLOUDWS_TEST_TOKEN", secret)
    script = 'echo "token=$CLOUDWS_TEST_TOKEN"\nprintf "%s" "$CLOUDWS_TEST_TOKEN" | fold -w 7\n'
    state, config = config_for(tmp_path, repo_with_setup(tmp_path, script), secret_names=["CLOUDWS_TEST_TOKEN"])
    async with started(state, config) as bridge:
        await bridge.ready()
    output = "".join(e["output"] for e in bridge.progress("setup"))
    assert output.startswith("token=[redacted]\n"), output
    assert secret not in (state / "events.jsonl").read_text()


async def test_a_stop_during_setup_ends_the_waiting_prompt_at_once(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    monkeypatch.setenv("SETUP_FIFO", str(fifo))
    script = 'echo waiting\ncat "$SETUP_FIFO" > /dev/null\necho ran >> "$SETUP_MARKER"\n'
    state, config = config_for(tmp_path, repo_with_setup(tmp_path, script))
    async with started(state, config) as bridge:
        await bridge.until(lambda e: e["type"] == "sandbox_progress" and "waiting" in e["output"])
        bridge.send(prompt("m1", "change things"))
        bridge.send({"op": "interrupt"})
        done = await bridge.until(lambda e: e["type"] == "execution_complete")
        assert done["interrupted"] and done["error"] == "stopped before it started"
        assert not [e for e in bridge.events if e.get("status") == "ready"], "setup was still running"
        await asyncio.to_thread(lambda: open(fifo, "w").close())  # the script reads its end, and ends
        await bridge.ready()
    assert runs(marker) == 1


async def test_a_daemon_stopping_during_setup_kills_the_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "never"
    os.mkfifo(fifo)
    monkeypatch.setenv("SETUP_FIFO", str(fifo))
    state, config = config_for(tmp_path, repo_with_setup(tmp_path, 'echo "pid $$"\ncat "$SETUP_FIFO"\n'))
    async with started(state, config) as bridge:
        running = await bridge.until(lambda e: e["type"] == "sandbox_progress" and "pid " in e["output"])
        pid = int(running["output"].split()[1])
        bridge.send({"op": "shutdown"})
        await bridge.until(lambda e: e.get("status") == "stopped")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_setup_past_its_timeout_is_killed_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "never"
    os.mkfifo(fifo)
    monkeypatch.setenv("SETUP_FIFO", str(fifo))
    state, config = config_for(tmp_path, repo_with_setup(tmp_path, 'echo started\ncat "$SETUP_FIFO"\n'),
                               setup_timeout_s=0.3)  # fmt: skip
    async with started(state, config) as bridge:
        await bridge.ready()
    failed = bridge.progress("setup")[-1]
    assert failed["state"] == "failed" and failed["detail"] == "timed out after 0.3 s"
    assert failed["output"] == "started"


async def test_a_setup_script_linking_out_of_the_work_tree_is_not_run(tmp_path: Path, marker: Path) -> None:
    outside = tmp_path / "outside.sh"
    outside.write_text('echo ran >> "$SETUP_MARKER"\n')
    bare = make_bare_repo(tmp_path)
    seed = tmp_path / "seeds" / "project"
    (seed / ".cloudws").mkdir()
    os.symlink(outside, seed / ".cloudws" / "setup.sh")
    git("add", "--all", cwd=seed)
    git("commit", "--quiet", "-m", "a setup script elsewhere", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:main", cwd=seed)
    state, config = config_for(tmp_path, bare)
    async with started(state, config) as bridge:
        await bridge.ready()
    (refused,) = bridge.progress("setup")[1:]
    assert refused["state"] == "failed" and "symlink pointing outside the work tree" in refused["detail"]
    assert runs(marker) == 0


async def test_a_snapshot_restore_keeps_an_unpushed_commit_and_fetches(tmp_path: Path, marker: Path) -> None:
    bare = repo_with_setup(tmp_path, 'echo ran >> "$SETUP_MARKER"\n')
    state, config = config_for(tmp_path, bare, restore_kind="snapshot")
    work = Path(config.workdir)  # as the earlier sandbox left it: on the session branch, one commit ahead
    git("clone", "--quiet", str(bare), str(work))
    git("checkout", "--quiet", "-b", BRANCH, cwd=work)
    (work / "notes.txt").write_text("work in progress\n")
    git("add", "--all", cwd=work)
    git("commit", "--quiet", "-m", "not pushed yet", cwd=work)
    local = git("rev-parse", "HEAD", cwd=work)
    newer = push_to_main(tmp_path, "after-snapshot.txt")
    async with started(state, config) as bridge:
        status = await bridge.ready()
    assert git("rev-parse", "HEAD", cwd=work) == local and git("branch", "--show-current", cwd=work) == BRANCH
    assert git("rev-parse", "origin/main", cwd=work) == newer, "fetched"
    assert [s for s, state_ in steps(bridge) if state_ != "running"] == ["restore", "fetch", "agent"]
    assert "restored from a snapshot" in status["detail"]
    assert runs(marker) == 0, "its setup ran in the earlier sandbox"


async def test_a_snapshot_restore_whose_fetch_fails_is_noted_and_goes_on(tmp_path: Path) -> None:
    bare = make_bare_repo(tmp_path)
    state, config = config_for(tmp_path, bare, restore_kind="snapshot")
    git("clone", "--quiet", str(bare), config.workdir)
    git("checkout", "--quiet", "-b", BRANCH, cwd=config.workdir)
    bare.rename(bare.with_suffix(".gone"))  # origin is unreachable now
    async with started(state, config) as bridge:
        await bridge.ready()
    fetch = bridge.progress("fetch")[-1]
    assert fetch["state"] == "failed" and "could not fetch from origin" in fetch["detail"]


async def test_prebuild_mode_runs_setup_on_the_base_branch_without_the_agent(tmp_path: Path, marker: Path) -> None:
    state, config = config_for(tmp_path, repo_with_setup(tmp_path, 'echo ran >> "$SETUP_MARKER"\n'), prebuild=True)
    async with started(state, config) as bridge:
        status = await bridge.ready()
        assert bridge.daemon.agent is None
    assert [s for s, _ in steps(bridge)] == ["clone", "clone", "setup", "setup"]
    assert status["detail"] == "prebuilt on main"
    assert git("branch", "--show-current", cwd=config.workdir) == "main"
    assert runs(marker) == 1


@pytest.mark.parametrize("pushed_before", [False, True])
async def test_a_prebuild_restore_fetches_and_branches_from_origin(
    tmp_path: Path, marker: Path, pushed_before: bool
) -> None:
    bare = repo_with_setup(tmp_path, 'echo ran >> "$SETUP_MARKER"\n')
    state, config = config_for(tmp_path, bare, prebuild=True)
    async with started(state, config) as bridge:  # makes the image's disk
        await bridge.ready()
    newer = push_to_main(tmp_path, "after-image.txt")
    if pushed_before:  # an earlier sandbox of this session pushed its work
        seed = tmp_path / "seeds" / "project"
        (seed / "session.txt").write_text("earlier work\n")
        git("add", "--all", cwd=seed)
        git("commit", "--quiet", "-m", "earlier sandbox", cwd=seed)
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=seed)
        newer = git("rev-parse", "HEAD", cwd=seed)
    config = replace(config, prebuild=False, restore_kind="prebuild")  # the same disk, a fresh daemon
    async with started(tmp_path / "sandboxes" / "session", config) as bridge:
        status = await bridge.ready()
    assert git("rev-parse", "HEAD", cwd=config.workdir) == newer
    assert git("branch", "--show-current", cwd=config.workdir) == BRANCH
    assert [s for s, state_ in steps(bridge) if state_ != "running"] == ["restore", "fetch", "agent"]
    assert "restored from a prebuilt repository image" in status["detail"]
    assert runs(marker) == 1, "the setup ran when the image was made, not again"


async def test_a_restore_without_its_work_tree_falls_back_to_a_clone_and_says_so(
    tmp_path: Path, marker: Path
) -> None:
    state, config = config_for(tmp_path, repo_with_setup(tmp_path, 'echo ran >> "$SETUP_MARKER"\n'),
                               restore_kind="snapshot")  # fmt: skip
    async with started(state, config) as bridge:
        await bridge.ready()
    restore = bridge.progress("restore")[-1]
    assert restore["state"] == "failed" and "cloned instead" in restore["detail"]
    (note,) = [e for e in bridge.events if e["type"] == "error"]
    assert note["code"] == "restore_fell_back"
    assert ("clone", "done") in steps(bridge) and git("branch", "--show-current", cwd=config.workdir) == BRANCH
    assert runs(marker) == 1, "a fresh clone runs the setup script"


async def test_a_running_setup_holds_the_daemon_with_no_hub_and_its_end_starts_the_idle_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IDLE_TIMEOUT_ENV, "0.2")
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    monkeypatch.setenv("SETUP_FIFO", str(fifo))
    state, config = config_for(tmp_path, repo_with_setup(tmp_path, 'echo waiting\ncat "$SETUP_FIFO" > /dev/null\n'))
    state.mkdir(parents=True)
    daemon = Daemon(config, state, state / "bridge.sock")  # no hub ever connects
    waiting = asyncio.Event()
    daemon.log.subscribe(lambda e: waiting.set() if "waiting" in e.get("output", "") else None)
    serving = asyncio.get_running_loop().create_task(daemon.serve())
    try:
        await asyncio.wait_for(waiting.wait(), 60)
        verdict = daemon.idle.verdict()
        assert not verdict.stop and verdict.check_in_s is None, "no idle end is even due while setup runs"
        await asyncio.to_thread(lambda: open(fifo, "w").close())
        await asyncio.wait_for(asyncio.shield(serving), 30)  # ready, then idle: it ends itself
    finally:
        daemon._stopping.set()
        await asyncio.wait_for(serving, 30)
    logged = [json.loads(line) for line in (state / "events.jsonl").read_text().splitlines()]
    assert [e.get("status") for e in logged if e["type"] == "sandbox_status"][-2:] == ["ready", "stopped"]
    assert logged[-1]["detail"].startswith("idle:")


async def test_a_snapshot_older_than_the_last_push_catches_up_so_the_next_push_is_accepted(tmp_path: Path) -> None:
    """The snapshot after the last prompt failed: the image holds the commit before the pushed one."""
    bare = make_bare_repo(tmp_path)
    state, config = config_for(tmp_path, bare, restore_kind="snapshot")
    work = Path(config.workdir)
    git("clone", "--quiet", str(bare), str(work))
    git("checkout", "--quiet", "-b", BRANCH, cwd=work)
    git("push", "--quiet", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=work)
    ahead = tmp_path / "ahead"  # the lost sandbox's last prompt, pushed
    git("clone", "--quiet", "--branch", BRANCH, str(bare), str(ahead))
    (ahead / "last.txt").write_text("the last prompt's work\n")
    git("add", "--all", cwd=ahead)
    git("-c", "user.name=A", "-c", "user.email=a@example.test", "commit", "--quiet", "-m", "last", cwd=ahead)
    git("push", "--quiet", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=ahead)
    async with started(state, config) as bridge:
        await bridge.ready()
    assert git("rev-parse", "HEAD", cwd=work) == git("rev-parse", "HEAD", cwd=ahead)
    assert (work / "last.txt").exists()


async def test_a_snapshot_left_on_another_branch_with_edits_is_put_back_on_the_session_branch(tmp_path: Path) -> None:
    bare = make_bare_repo(tmp_path)
    state, config = config_for(tmp_path, bare, restore_kind="snapshot")
    work = Path(config.workdir)
    git("clone", "--quiet", str(bare), str(work))
    git("checkout", "--quiet", "-b", BRANCH, cwd=work)
    git("checkout", "--quiet", "-b", "agent-experiment", cwd=work)
    first = next(p for p in work.iterdir() if p.is_file())
    first.write_text("edited on another branch\n")
    async with started(state, config) as bridge:
        await bridge.ready()
    assert git("branch", "--show-current", cwd=work) == BRANCH
    assert "cloudws: left on another branch" in git("stash", "list", cwd=work), "the edits are kept in a stash"


async def test_a_snapshot_whose_git_dir_the_agent_removed_falls_back_to_a_clone(tmp_path: Path) -> None:
    bare = make_bare_repo(tmp_path)
    state, config = config_for(tmp_path, bare, restore_kind="snapshot")
    work = Path(config.workdir)
    work.mkdir(parents=True)
    (work / "leftover.txt").write_text("the agent removed .git but left this\n")
    async with started(state, config) as bridge:
        await bridge.ready()
    assert git("branch", "--show-current", cwd=work) == BRANCH
    assert ("clone", "done") in steps(bridge)
