"""Sandboxes on this machine: each runs the runtime daemon under bubblewrap, in its own folder
under ``data_dir/sandboxes``.

A sandbox's folder has two parts. ``box/`` is what the sandbox sees and writes: its config, its
event log, its work tree and home. Everything else there belongs to the host: the pid and
namespace files, the daemon's log and the bridge socket, out of the agent's reach, since the hub
acts on them (a pid the agent could rewrite would let it aim ``terminate`` at any process).

The daemon starts in a new process session, so it keeps working when the Jupyter server dies;
a restarted server finds it again by the pid file. Under bubblewrap the daemon and everything
it starts live in one PID namespace, which ends with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from jupyter_core.paths import jupyter_config_dir, jupyter_config_path, jupyter_data_dir, jupyter_runtime_dir
from traitlets import Enum, Float, List, Unicode

import cloudws_sandbox
from cloudws_sandbox.daemon import DaemonConfig
from cloudws_sandbox.procs import MARKER, kill_marked

from . import local_snapshots
from .base import BridgeStream, ExecResult, ProgressFn, SandboxBackend, SandboxGone, SandboxSpec, SnapshotGone
from .bubblewrap import IsolationUnavailable, MountPlan, bwrap_argv, check_available
from .cli import bundled_cli_path
from .streams import ProcessStream, StreamPair

# The runtime runs as it would in a bare image: no site-packages (-S), only itself on the path.
RUNTIME_ROOT = str(Path(cloudws_sandbox.__file__).resolve().parent.parent)
RUNTIME_PYTHON = [sys.executable, "-S", "-m", "cloudws_sandbox"]
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux
LOG_TAIL_BYTES = 8192  # what exit_reason reads of a daemon's log: its end, never the whole file
# Passed from the server so the daemon can find git, python and a locale; nothing else leaks in.
BASE_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
INFO_FILE = "bwrap-info.json"  # bubblewrap's --info-fd output: the pid of the namespace's init
# Always hidden. A sandbox of a server run as root runs as root without capabilities, and root
# still owns these: readable unless masked.
# /run holds the host's sockets (docker, dbus, systemd): a read-only file does not stop connect().
SYSTEM_HIDDEN = ("/run", "/etc/ssh", "/var/backups")
# What a hostile agent could leave in the session's conversation dir for the next sandbox's Claude
# Code to obey or run (settings with hooks, memory, commands); transcripts under projects/ stay.
CONVERSATION_SCRUB = ("settings.json", "settings.local.json", "CLAUDE.md", "hooks", "commands", "agents",
                      "plugins", "output-styles")  # fmt: skip
SYSTEM_MASKED = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")


class LocalBackend(SandboxBackend):
    name = "local"
    supports_snapshot = True  # copies of the work tree and home: see local_snapshots.py
    supports_reattach = True

    root_dir = Unicode(help="Directory holding one folder per sandbox (set by the extension from data_dir).").tag(
        config=True
    )
    cli_path = Unicode(
        "", help="Claude Code CLI to run in sandboxes; empty uses the one bundled with claude-agent-sdk."
    ).tag(config=True)
    isolation = Enum(
        ["bubblewrap", "none"],
        "bubblewrap",
        help="How local sandboxes are isolated. 'bubblewrap' (Linux, Debian's bubblewrap package): the "
        "system read-only, only the sandbox's own folder writable, your home, Jupyter's runtime and "
        "config directories and the other sandboxes hidden, its own PID namespace. When bubblewrap "
        "cannot run, sandboxes are refused with the reason. 'none' runs them as plain processes that "
        "can read and write everything you can.",
    ).tag(config=True)
    bwrap_path = Unicode("bwrap", help="The bubblewrap executable (a name on PATH or a path).").tag(config=True)
    hidden_paths = List(
        Unicode(),
        help="More host directories to hide from sandboxes, besides your home, the data directory, "
        "Jupyter's runtime and config directories and the server's root directory.",
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
        self._starting: set[str] = set()  # ids being created: folders made, daemon not yet started
        self._bwrap: str | None = None  # resolved once bubblewrap has been seen to work

    @property
    def isolation_label(self) -> str:
        """What ``GET status`` and the chat badge show."""
        return self.isolation

    # -- paths ------------------------------------------------------------------------------

    def _dir(self, sandbox_id: str) -> Path:
        if not sandbox_id.startswith("local-") or "/" in sandbox_id or ".." in sandbox_id:
            raise SandboxGone(f"not a local sandbox id: {sandbox_id!r}")
        return Path(self.root_dir) / sandbox_id

    def _snapshots_dir(self) -> Path:
        """Beside the sandboxes' folders, in the data directory that no sandbox sees."""
        return Path(self.root_dir).parent / "snapshots"

    def _socket_path(self, sandbox_id: str) -> Path:
        path = self._dir(sandbox_id) / "bridge.sock"
        if len(str(path)) <= MAX_SOCKET_PATH:
            return path
        short_dir = _short_socket_dir()
        short_dir.mkdir(mode=0o700, exist_ok=True)
        info = short_dir.lstat()
        # A predictable name in a shared directory: use it only if it is really ours and private.
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise SandboxGone(f"{short_dir} is not a private directory of this user; remove it or use a shorter data_dir")
        return short_dir / f"{sandbox_id}.sock"

    def _hidden(self) -> list[str]:
        """Host directories a sandbox must not see (what it needs beneath them is bound back)."""
        data_dir = str(Path(self.root_dir).parent)
        paths = [str(Path.home()), data_dir, self.root_dir, jupyter_runtime_dir(), jupyter_config_dir(),
                 jupyter_data_dir(), *jupyter_config_path(), *SYSTEM_HIDDEN, *self.hidden_paths,
                 str(_short_socket_dir())]  # fmt: skip
        return paths

    @staticmethod
    def _runtime_paths(cli: str) -> list[str]:
        """What the daemon needs to start, bound back read-only if it lies in a hidden directory."""
        python = os.path.realpath(sys.executable)
        paths = [sys.base_prefix, sys.prefix, os.path.dirname(python), RUNTIME_ROOT, os.path.dirname(os.path.realpath(cli))]
        resolv = os.path.realpath("/etc/resolv.conf")  # often a link into /run (systemd-resolved)
        return paths + ([resolv] if resolv.startswith("/run/") else [])

    def _plan(self, cli: str, writable: list[str], readable: Sequence[str] = (),
              extra_args: Sequence[str] = ()) -> MountPlan:  # fmt: skip
        """What a process of this backend's sandboxes sees: ``writable`` and ``readable`` beside
        what the runtime needs, the hidden directories and the masked files."""
        return MountPlan(writable=writable, hidden=self._hidden(), readable=[*self._runtime_paths(cli), *readable],
                         masked_files=SYSTEM_MASKED, extra_args=extra_args)  # fmt: skip

    # -- interface --------------------------------------------------------------------------

    def _isolation_command(self) -> str | None:
        """The bwrap path when sandboxes are isolated; raises when they should be and cannot."""
        if self.isolation == "none":
            return None
        if self._bwrap is None:
            try:
                self._bwrap = check_available(self.bwrap_path)
            except IsolationUnavailable as exc:
                raise SandboxGone(str(exc)) from None
        return self._bwrap

    async def create(self, spec: SandboxSpec, progress: ProgressFn | None = None) -> str:
        cli = self.cli_path or bundled_cli_path()
        if not cli:
            raise SandboxGone("no Claude Code CLI: install claude-agent-sdk or set LocalBackend.cli_path")
        bwrap = await asyncio.to_thread(self._isolation_command)
        snapshot = self._restore_source(spec)
        sandbox_id = f"local-{spec.session_id[:8]}-{uuid.uuid4().hex[:8]}"
        host = self._dir(sandbox_id)
        box = host / "box"
        self._starting.add(sandbox_id)  # from its first folder on: never taken for an orphan
        box.mkdir(parents=True)
        host.chmod(0o700)
        if snapshot is not None:
            await self._restore(snapshot, host, spec)
        (box / "home").mkdir(exist_ok=True)
        claude_dir = Path(spec.conversation_dir) if spec.conversation_dir else box / "claude"
        claude_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_scrub, claude_dir)
        DaemonConfig(
            session_id=spec.session_id, repo=spec.repo, base_branch=spec.base_branch, branch=spec.branch,
            model=spec.model, cli_path=cli, workdir=str(box / "repo"), secret_names=list(spec.secret_names),
            prebuild=spec.prebuild, restore_kind=spec.restore_kind if snapshot is not None else "",
            setup_timeout_s=spec.setup_timeout_s, git_credentials=spec.git_credentials,
        ).save(box / "config.json")  # fmt: skip
        env = _base_env()
        env.update(spec.env)
        env.update(
            HOME=str(box / "home"),
            CLAUDE_CONFIG_DIR=str(claude_dir),
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=env.get("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            IS_SANDBOX="1",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=RUNTIME_ROOT,
        )
        env[MARKER] = str(box)  # inherited by the agent and its tools: how an unisolated sandbox is found
        # The hub makes the listening socket, outside the box: the agent can neither see its path
        # nor swap it for a link to another sandbox's socket. The daemon inherits it.
        listener = _listen(self._socket_path(sandbox_id))
        command = [*RUNTIME_PYTHON, "serve", "--state-dir", str(box), "--listen-fd", str(listener.fileno())]
        pass_fds = [listener.fileno()]
        info = None
        try:
            if bwrap is not None:
                info = open(host / INFO_FILE, "wb")  # noqa: SIM115 - handed to bwrap, closed below
                pass_fds.append(info.fileno())
                readable, writable = [], [str(box), str(claude_dir)]
                if _is_local_path(spec.repo):
                    # The sandbox pushes to a local origin, but may not write its hooks or config:
                    # git would run those on the host, outside the sandbox.
                    readable.append(spec.repo)
                    writable += push_paths(spec.repo)
                plan = self._plan(cli, writable, readable)
                command = bwrap_argv(bwrap, plan, command, chdir=str(box), info_fd=info.fileno(),
                                     drop_caps=os.geteuid() == 0)  # fmt: skip
            with open(host / "daemon.log", "ab") as log_file:
                proc = subprocess.Popen(
                    command, cwd=box, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    start_new_session=True, pass_fds=pass_fds,
                )  # fmt: skip
        finally:
            listener.close()  # the daemon has its own copy
            if info is not None:
                info.close()
        (host / "daemon.pid").write_text(str(proc.pid))
        self._children[sandbox_id] = proc
        self._starting.discard(sandbox_id)
        self.log.info("started local sandbox %s (pid %s, isolation %s)", sandbox_id, proc.pid, self.isolation)
        return sandbox_id

    def _restore_source(self, spec: SandboxSpec) -> Path | None:
        """The snapshot folder ``spec`` starts from, if any (a session's snapshot or a prebuilt
        repository image: both are snapshots here); :class:`SnapshotGone` when it is not there
        (the hub then clones instead), checked before anything of the sandbox is made."""
        if spec.restore_from is None:
            return None
        if spec.restore_kind not in ("snapshot", "prebuild"):
            raise SnapshotGone(f"cannot start from a {spec.restore_kind!r} image")
        path = local_snapshots.snapshot_path(self._snapshots_dir(), spec.restore_from)
        if not path.is_dir():
            raise SnapshotGone(f"snapshot {spec.restore_from} is gone")
        return path

    async def _restore(self, snapshot: Path, host: Path, spec: SandboxSpec) -> None:
        """Copy the snapshot into the new box before its daemon starts. The conversation comes
        from the session's conversation directory when there is one (bound in as it is), and
        never from a repository image."""
        keep_claude = spec.restore_kind == "snapshot" and not spec.conversation_dir
        parts = tuple(p for p in local_snapshots.SNAPSHOT_PARTS if p != "claude" or keep_claude)
        try:
            await asyncio.to_thread(local_snapshots.restore, snapshot, host / "box", parts)
        except (FileNotFoundError, SnapshotGone) as exc:  # deleted meanwhile: gone for good
            await asyncio.to_thread(shutil.rmtree, host, True)
            raise SnapshotGone(f"could not restore snapshot {snapshot.name}: {exc}") from exc
        except OSError as exc:  # a full disk, say: the snapshot is still good, keep it
            await asyncio.to_thread(shutil.rmtree, host, True)
            raise SandboxGone(f"could not restore snapshot {snapshot.name} (it is kept): {exc}") from exc

    async def snapshot(self, sandbox_id: str) -> str:
        """Copy the sandbox's work tree, home and (without a data directory) conversation."""
        box = self._dir(sandbox_id) / "box"
        if not box.is_dir():
            raise SandboxGone(f"sandbox {sandbox_id} is gone")
        snapshot_id = local_snapshots.new_snapshot_id()
        target = local_snapshots.snapshot_path(self._snapshots_dir(), snapshot_id)
        await asyncio.to_thread(local_snapshots.take, box, target)
        return snapshot_id

    async def delete_snapshot(self, snapshot_id: str) -> None:
        path = local_snapshots.snapshot_path(self._snapshots_dir(), snapshot_id)
        await asyncio.to_thread(local_snapshots.delete, path)

    def _pid(self, sandbox_id: str) -> int | None:
        return _read_int(self._dir(sandbox_id) / "daemon.pid")

    def _owns(self, pid: int, sandbox_id: str) -> bool:
        """Whether ``pid`` is this sandbox's daemon or bubblewrap, not a recycled pid."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return str(self._dir(sandbox_id)).encode() in cmdline and b"cloudws_sandbox" in cmdline

    async def is_alive(self, sandbox_id: str) -> bool:
        """Whether the daemon runs. Under bubblewrap, bwrap exits when the daemon does (while its
        namespace's init may linger with orphaned tools until ``terminate`` kills it)."""
        child = self._children.get(sandbox_id)
        if child is not None:
            return child.poll() is None  # also reaps it, so a dead child is no zombie
        pid = self._pid(sandbox_id)
        return pid is not None and self._owns(pid, sandbox_id)

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
        """Run ``argv`` in the sandbox's work tree, seeing what the sandbox sees."""
        box = self._dir(sandbox_id) / "box"
        cwd = box / "repo" if (box / "repo").exists() else box
        if (self._dir(sandbox_id) / INFO_FILE).exists():
            bwrap = await asyncio.to_thread(self._isolation_command) or self.bwrap_path
            cli = self.cli_path or bundled_cli_path() or sys.executable
            plan = self._plan(cli, [str(box)], extra_args=("--die-with-parent",))
            argv = bwrap_argv(bwrap, plan, argv, chdir=str(cwd), info_fd=None, drop_caps=os.geteuid() == 0)
        env = {**_base_env(), "HOME": str(box / "home")}
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return ExecResult(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))

    async def terminate(self, sandbox_id: str) -> None:
        """SIGTERM the daemon (it closes its agent), then kill whatever of the sandbox is left,
        and delete its folder: a stopped local sandbox is never started again."""
        host = self._dir(sandbox_id)
        init_pid = namespace_init(host / INFO_FILE)
        pid = self._pid(sandbox_id)
        if pid is not None and await self.is_alive(sandbox_id):
            # Under bubblewrap the daemon is the first child of the namespace's init; a SIGTERM to
            # bwrap itself would not reach it.
            daemon_pid = first_child(init_pid) if init_pid is not None else pid
            if self._owns(daemon_pid, sandbox_id):  # not a pid recycled meanwhile
                _signal(daemon_pid, signal.SIGTERM, group=init_pid is None)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.terminate_timeout_s
            while await self.is_alive(sandbox_id) and loop.time() < deadline:
                await asyncio.sleep(0.05)
        if init_pid is not None:
            # Killing a PID namespace's init kills every process in it: no search needed.
            if self._owns(init_pid, sandbox_id):
                _signal(init_pid, signal.SIGKILL)
        else:
            await asyncio.to_thread(kill_marked, str(host / "box"))
            # The daemon is not dumpable (its environment unreadable to the hub's user unless
            # root), so the marker search cannot find it: a daemon that ignored SIGTERM is killed by pid.
            if pid is not None and self._owns(pid, sandbox_id):
                _signal(pid, signal.SIGKILL, group=True)
        child = self._children.pop(sandbox_id, None)
        if child is not None:
            try:
                await asyncio.to_thread(child.wait, self.terminate_timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
        socket_path = self._socket_path(sandbox_id)
        await asyncio.to_thread(shutil.rmtree, host, True)
        socket_path.unlink(missing_ok=True)

    async def orphans(self, claimed: set[str]) -> list[str]:
        """Sandbox folders under ``root_dir`` that no session claims, live or not (a dead one's
        folder is left to delete), except those this server started."""
        try:
            names = await asyncio.to_thread(os.listdir, self.root_dir)
        except FileNotFoundError:
            return []
        ours = self._children.keys() | self._starting
        return sorted(n for n in names if n.startswith("local-") and n not in claimed and n not in ours)

    async def exit_reason(self, sandbox_id: str) -> str:
        child = self._children.get(sandbox_id)
        code = child.poll() if child is not None else None
        try:
            tail = (await asyncio.to_thread(_tail, self._dir(sandbox_id) / "daemon.log")).strip().splitlines()[-3:]
        except (OSError, SandboxGone):
            tail = []
        reason = "the sandbox daemon exited" + (f" with code {code}" if code is not None else "")
        return reason + (": " + " | ".join(tail) if tail else "")


def _base_env() -> dict[str, str]:
    return {name: os.environ[name] for name in BASE_ENV_NAMES if name in os.environ}


def _short_socket_dir() -> Path:
    """Where bridge sockets go when the sandbox folder's path is too long for a socket's name."""
    return Path(tempfile.gettempdir()) / f"cloudws-{os.getuid()}"


def _scrub(conversation_dir: Path) -> None:
    for name in CONVERSATION_SCRUB:
        path = conversation_dir / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _listen(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(16)
    listener.set_inheritable(True)
    return listener


def _is_local_path(repo: str) -> bool:
    return repo.startswith("/")


def push_paths(repo: str) -> list[str]:
    """What a push of a session branch into the local repository ``repo`` writes: its objects and
    ``refs/heads/cloudws/``. Not its other branches, not its reflogs (a link planted there would
    make the host's git append to any file), hooks or config (git would run those on the host).
    Empty when its git directory is not found (the push then fails, saying so)."""
    path = Path(repo)
    git_dir = path if (path / "HEAD").is_file() and (path / "objects").is_dir() else path / ".git"
    if not (git_dir / "objects").is_dir() or not (git_dir / "refs" / "heads").is_dir():
        return []
    session_refs = git_dir / "refs" / "heads" / "cloudws"
    session_refs.mkdir(exist_ok=True)
    return [str(git_dir / "objects"), str(session_refs)]


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def namespace_init(info_path: Path) -> int | None:
    """The host pid of the sandbox's PID-namespace init, from bubblewrap's --info-fd output."""
    try:
        pid = json.loads(info_path.read_text() or "{}").get("child-pid")
    except (OSError, ValueError):
        return None
    return pid if isinstance(pid, int) and pid > 1 else None


def first_child(pid: int) -> int:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if children else pid


def _signal(pid: int, sig: int, *, group: bool = False) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, size_bytes: int = LOG_TAIL_BYTES) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - size_bytes))
        return fh.read().decode(errors="replace")
