"""Sandboxes as local processes: each runs the runtime daemon in its own directory under
``data_dir/sandboxes``, with its own ``HOME`` and ``CLAUDE_CONFIG_DIR``.

The daemon starts in a new process session, so it keeps working when the Jupyter server dies;
a restarted server finds it again by the pid file in its directory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from traitlets import Enum, Float, Unicode

import cloudws_sandbox

from .cli import bundled_cli_path
from cloudws_sandbox.daemon import DaemonConfig
from cloudws_sandbox.procs import MARKER, kill_marked

from .base import BridgeStream, ExecResult, SandboxBackend, SandboxGone, SandboxSpec

# The runtime runs as it would in a bare image: no site-packages (-S), only itself on the path.
RUNTIME_ROOT = str(Path(cloudws_sandbox.__file__).resolve().parent.parent)
RUNTIME_PYTHON = [sys.executable, "-S", "-m", "cloudws_sandbox"]
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux
# Passed from the server so the daemon can find git, python and a locale; nothing else leaks in.
BASE_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")


class StreamPair:
    """A :class:`BridgeStream` over an asyncio reader/writer pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def readline(self) -> bytes:
        return await self._reader.readline()

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class ProcessStream:
    """A :class:`BridgeStream` over an exec'd process's stdin/stdout, the only stream that
    exec-style backends (Modal, docker exec, kubectl exec) offer."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc

    async def readline(self) -> bytes:
        assert self.proc.stdout is not None
        return await self.proc.stdout.readline()

    async def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # attach ends when its input ends
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class LocalBackend(SandboxBackend):
    name = "local"
    supports_snapshot = False
    supports_reattach = True

    root_dir = Unicode(help="Directory holding one folder per sandbox (set by the extension from data_dir).").tag(
        config=True
    )
    cli_path = Unicode(
        "", help="Claude Code CLI to run in sandboxes; empty uses the one bundled with claude-agent-sdk."
    ).tag(config=True)
    bridge = Enum(
        ["socket", "exec"],
        "socket",
        help="How the hub reaches a sandbox's daemon: its unix socket, or the stdio of an exec'd "
        "'python -m cloudws_sandbox attach' (the way remote backends connect; useful to test that path).",
    ).tag(config=True)
    connect_timeout_s = Float(20.0, help="How long to wait for a new sandbox's daemon to listen.").tag(config=True)
    terminate_timeout_s = Float(10.0, help="Grace before a sandbox that ignores SIGTERM is killed.").tag(config=True)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # -- paths ------------------------------------------------------------------------------

    def _dir(self, sandbox_id: str) -> Path:
        if not sandbox_id.startswith("local-") or "/" in sandbox_id or ".." in sandbox_id:
            raise SandboxGone(f"not a local sandbox id: {sandbox_id!r}")
        return Path(self.root_dir) / sandbox_id

    def _socket_path(self, sandbox_id: str) -> Path:
        path = self._dir(sandbox_id) / "bridge.sock"
        if len(str(path)) <= MAX_SOCKET_PATH:
            return path
        short_dir = Path(tempfile.gettempdir()) / f"cloudws-{os.getuid()}"
        short_dir.mkdir(mode=0o700, exist_ok=True)
        info = short_dir.lstat()
        # A predictable name in a shared directory: use it only if it is really ours and private.
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise SandboxGone(f"{short_dir} is not a private directory of this user; remove it or use a shorter data_dir")
        return short_dir / f"{sandbox_id}.sock"

    # -- interface --------------------------------------------------------------------------

    async def create(self, spec: SandboxSpec) -> str:
        cli = self.cli_path or bundled_cli_path()
        if not cli:
            raise SandboxGone("no Claude Code CLI: install claude-agent-sdk or set LocalBackend.cli_path")
        sandbox_id = f"local-{spec.session_id[:8]}-{uuid.uuid4().hex[:8]}"
        state = self._dir(sandbox_id)
        (state / "home").mkdir(parents=True)
        (state / "claude").mkdir()
        DaemonConfig(
            session_id=spec.session_id, repo=spec.repo, base_branch=spec.base_branch, branch=spec.branch,
            model=spec.model, cli_path=cli, workdir=str(state / "repo"), secret_names=list(spec.secret_names),
        ).save(state / "config.json")  # fmt: skip
        env = {name: os.environ[name] for name in BASE_ENV_NAMES if name in os.environ}
        env.update(spec.env)
        env.update(
            HOME=str(state / "home"),
            CLAUDE_CONFIG_DIR=str(state / "claude"),
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=env.get("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            IS_SANDBOX="1",
            PYTHONUNBUFFERED="1",
        )
        env["PYTHONPATH"] = RUNTIME_ROOT
        env[MARKER] = str(state)  # inherited by the agent and its tools: how terminate finds them
        socket_path = self._socket_path(sandbox_id)
        with open(state / "daemon.log", "ab") as log_file:
            proc = subprocess.Popen(
                [*RUNTIME_PYTHON, "serve", "--state-dir", str(state), "--socket", str(socket_path)],
                cwd=state, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        (state / "daemon.pid").write_text(str(proc.pid))
        self._children[sandbox_id] = proc
        self.log.info("started local sandbox %s (pid %s)", sandbox_id, proc.pid)
        return sandbox_id

    def _pid(self, sandbox_id: str) -> int | None:
        try:
            return int((self._dir(sandbox_id) / "daemon.pid").read_text())
        except (OSError, ValueError):
            return None

    async def is_alive(self, sandbox_id: str) -> bool:
        child = self._children.get(sandbox_id)
        if child is not None:
            return child.poll() is None  # also reaps it, so a dead child is no zombie
        pid = self._pid(sandbox_id)
        if pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        # A recycled pid belongs to some other program: check it is this sandbox's daemon.
        return str(self._dir(sandbox_id)).encode() in cmdline and b"cloudws_sandbox" in cmdline

    async def connect(self, sandbox_id: str) -> BridgeStream:
        socket_path = self._socket_path(sandbox_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout_s
        while True:
            if not await self.is_alive(sandbox_id):
                raise SandboxGone(await self.exit_reason(sandbox_id))
            try:
                if self.bridge == "exec":
                    return await self._attach_process(socket_path)
                reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=2**26)
                return StreamPair(reader, writer)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if loop.time() > deadline:
                    raise SandboxGone(f"the sandbox daemon did not listen within {self.connect_timeout_s:.0f} s") from exc
                await asyncio.sleep(0.05)

    async def _attach_process(self, socket_path: Path) -> ProcessStream:
        if not socket_path.exists():
            raise FileNotFoundError(socket_path)
        proc = await asyncio.create_subprocess_exec(
            *RUNTIME_PYTHON, "attach", "--socket", str(socket_path), env={"PYTHONPATH": RUNTIME_ROOT},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26,
        )  # fmt: skip
        return ProcessStream(proc)

    async def exec(self, sandbox_id: str, argv: list[str], timeout_s: float = 60.0) -> ExecResult:
        cwd = self._dir(sandbox_id) / "repo"
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd if cwd.exists() else self._dir(sandbox_id),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return ExecResult(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))

    async def terminate(self, sandbox_id: str) -> None:
        """SIGTERM the daemon (it closes its agent), then SIGKILL whatever of the sandbox is left:
        the agent and its tools run in sessions of their own and may outlive a dead daemon."""
        pid = self._pid(sandbox_id)
        if pid is not None and await self.is_alive(sandbox_id):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.terminate_timeout_s
            while await self.is_alive(sandbox_id) and loop.time() < deadline:
                await asyncio.sleep(0.05)
        kill_marked(str(self._dir(sandbox_id)))
        await self.is_alive(sandbox_id)  # reaps the daemon if it was our child
        self._children.pop(sandbox_id, None)

    async def exit_reason(self, sandbox_id: str) -> str:
        child = self._children.get(sandbox_id)
        code = child.poll() if child is not None else None
        try:
            tail = (self._dir(sandbox_id) / "daemon.log").read_text(errors="replace").strip().splitlines()[-3:]
        except (OSError, SandboxGone):
            tail = []
        reason = "the sandbox daemon exited" + (f" with code {code}" if code is not None else "")
        return reason + (": " + " | ".join(tail) if tail else "")
