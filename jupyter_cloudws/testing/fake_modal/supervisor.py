"""The fake Modal sandbox: a detached supervisor running one command under bubblewrap.

Run as ``python supervisor.py SANDBOX_DIR`` (standard library only, so it needs no import path).
It detaches, starts the command in its own PID, IPC and UTS namespaces with a root built from the
host's (read-only) plus the sandbox's writable tree, and reports ``ready`` on stdout. Then it
enforces the sandbox's lifetime (``timeout``) and idle timeout, obeys ``terminate``, and records
how the sandbox ended in ``result.json`` before exiting.

Clients talk to it over an abstract unix socket (one line each): ``wait`` (the connection closes
when the sandbox has ended), ``terminate`` (likewise, after killing it), ``exec`` (held open for
as long as an exec'd process runs: the sandbox is not idle meanwhile). A refused connection means
the supervisor is gone; ``result.json`` then says how the sandbox ended.

Exec'd processes join the sandbox's namespaces with ``nsenter`` (see ``exec_argv``), so they see
the same files, ``/tmp`` and processes as the main command, and die with it: when the sandbox's
PID namespace ends, the kernel kills everything in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# The only paths a fake sandbox may write (besides a fresh /tmp), and what a snapshot keeps.
# This is the fake's limit: a real Modal container is writable everywhere and snapshots all of it.
WRITABLE_PATHS: tuple[str, ...] = ("/cloudws",)
# Top-level host directories a sandbox does not get: it has its own /proc, /dev and /tmp.
SKIPPED_TOP_LEVEL = frozenset({"proc", "dev", "tmp", "sys"})
READY_FD = 9  # the fd the command's wrapper writes one byte to once the sandbox is set up

STATUS_RETURNCODES = {"timeout": 124, "terminated": 137}


def control_address(sandbox_dir: str | os.PathLike[str]) -> str:
    """The supervisor's abstract socket name; gone as soon as the supervisor exits."""
    digest = hashlib.sha256(os.path.realpath(sandbox_dir).encode()).hexdigest()[:40]
    return "\0cloudws-fake-modal-" + digest


def returncode_of(result: dict) -> int:
    """``Sandbox.returncode`` for a result, as real modal maps it (sandbox/_common.py)."""
    return STATUS_RETURNCODES.get(result["status"], result.get("exitcode", 0))


def writable_root_of(path: str) -> str | None:
    for writable in WRITABLE_PATHS:
        if path == writable or path.startswith(writable.rstrip("/") + "/"):
            return writable
    return None


def check_mount_target(remote_path: str) -> None:
    """Local files must land where the fake can put them.

    Under a writable path they are copied into the sandbox's tree; under /tmp or in a new
    top-level directory they are bound read-only. Elsewhere the host's read-only directories
    are in the way.
    """
    parts = [p for p in remote_path.split("/") if p]
    if not remote_path.startswith("/") or not parts:
        raise ValueError(f"mount target {remote_path!r} must be an absolute path below /")
    if writable_root_of(remote_path):
        return
    top = parts[0]
    if top == "tmp" and len(parts) > 1:
        return
    if top not in SKIPPED_TOP_LEVEL and not os.path.lexists("/" + top):
        return
    raise ValueError(
        f"the fake modal cannot mount at {remote_path!r}: its sandboxes see the host's "
        f"directories read-only; mount under one of {WRITABLE_PATHS}, under /tmp, or in a new "
        "top-level directory"
    )


def host_python_paths() -> list[str]:
    """Where the host's Python lives (its prefix, its base installation, its executable)."""
    paths = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             os.path.dirname(sys.executable)}  # fmt: skip
    return sorted(os.path.realpath(p) for p in paths)


def bwrap_argv(fs_dir: str, mounts: list[list[str]], workdir: str, info_fd: int, argv: list[str]) -> list[str]:
    args = [
        "bwrap",
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--info-fd",
        str(info_fd),
    ]
    writable_tops = {p.strip("/").split("/")[0] for p in WRITABLE_PATHS}
    for name in sorted(os.listdir("/")):
        path = "/" + name
        if name in SKIPPED_TOP_LEVEL or name in writable_tops:
            continue
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    # The host's Python stands in for the image's: a checkout (and its .venv) under /tmp would be
    # hidden by the fresh /tmp, so bind it back.
    for path in host_python_paths():
        if path == "/tmp" or path.startswith("/tmp/"):
            args += ["--ro-bind", path, path]
    for writable in WRITABLE_PATHS:
        args += ["--bind", os.path.join(fs_dir, writable.strip("/")), writable]
    for host_path, remote_path in mounts:
        args += ["--ro-bind", host_path, remote_path]
    args += ["--chdir", workdir, "--"]
    # The wrapper tells the supervisor the sandbox is set up, then becomes the command.
    args += ["/bin/bash", "-c", f'printf x >&{READY_FD}; exec {READY_FD}>&-; exec "$@"', "sandbox", *argv]
    return args


def exec_argv(ns_pid: int, workdir: str, argv: list[str]) -> list[str]:
    """Run ``argv`` inside a running sandbox, like ``docker exec``."""
    return [
        "nsenter", "--target", str(ns_pid), "--mount", "--pid", "--root", "--",
        "/usr/bin/env", f"--chdir={workdir}", "--", *argv,
    ]  # fmt: skip


def pid_namespace_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class Supervisor:
    def __init__(self, sandbox_dir: Path) -> None:
        self.dir = sandbox_dir
        self.spec = json.loads((sandbox_dir / "spec.json").read_text())
        self.env = json.loads((sandbox_dir / "env.json").read_text())
        self.selector = selectors.DefaultSelector()
        self.exec_connections: set[socket.socket] = set()
        self.last_active = time.monotonic()
        self.proc: subprocess.Popen | None = None
        self.ns_pid = 0

    def start(self) -> bool:
        ready_r, ready_w = os.pipe()
        os.dup2(ready_w, READY_FD)
        os.close(ready_w)
        info_r, info_w = os.pipe()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(control_address(self.dir))
        self.listener.listen(64)
        argv = bwrap_argv(str(self.dir / "fs"), self.spec["mounts"], self.spec["workdir"], info_w, self.spec["argv"])
        with open(self.dir / "stdout.log", "wb") as out, open(self.dir / "stderr.log", "wb") as err:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                pass_fds=(READY_FD, info_w),
            )  # fmt: skip
        os.close(READY_FD)
        os.close(info_w)
        info = b""
        while chunk := os.read(info_r, 4096):
            info += chunk
        os.close(info_r)
        ready = os.read(ready_r, 1)
        os.close(ready_r)
        if not ready:
            code = self.proc.wait()
            error = (self.dir / "stderr.log").read_text(errors="replace")[-2000:]
            self.finish("failure", code, f"the fake sandbox did not start: {error}")
            return False
        self.ns_pid = json.loads(info)["child-pid"]
        runtime = {
            "supervisor_pid": os.getpid(),
            "ns_pid": self.ns_pid,
            "pid_namespace": pid_namespace_of(self.ns_pid),
            "started_at": time.time(),
        }
        _write_json(self.dir / "runtime.json", runtime)
        return True

    def finish(self, status: str, exitcode: int, exception: str = "") -> None:
        result = {"status": status, "exitcode": exitcode, "exception": exception, "finished_at": time.time()}
        _write_json(self.dir / "result.json", result)

    def kill(self) -> int:
        assert self.proc is not None
        # The namespace's init dying makes the kernel kill every process in the sandbox.
        if self.ns_pid and pid_namespace_of(self.ns_pid) is not None:
            try:
                os.kill(self.ns_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def deadline(self) -> float:
        deadline = self.started + self.spec["timeout"]
        idle = self.spec.get("idle_timeout")
        if idle and not self.exec_connections:
            deadline = min(deadline, self.last_active + idle)
        return deadline

    def run(self) -> None:
        assert self.proc is not None
        self.started = time.monotonic()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGTERM, lambda *_: None)
        pidfd = os.pidfd_open(self.proc.pid)
        self.selector.register(pidfd, selectors.EVENT_READ, "exit")
        self.selector.register(wake_r, selectors.EVENT_READ, "signal")
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        while True:
            timeout_s = max(0.0, self.deadline() - time.monotonic())
            events = self.selector.select(timeout_s)
            if not events and time.monotonic() >= self.deadline():
                self.kill()
                self.finish("timeout", 124)
                return
            for key, _ in events:
                if key.data == "exit":
                    code = self.proc.wait()
                    code = 128 - code if code < 0 else code
                    self.finish("success" if code == 0 else "failure", code)
                    return
                if key.data == "signal":
                    self.kill()
                    self.finish("terminated", 137)
                    return
                if key.data == "accept":
                    conn, _ = self.listener.accept()
                    self.selector.register(conn, selectors.EVENT_READ, "conn")
                    continue
                if self.on_message(key.fileobj):
                    return

    def on_message(self, conn: socket.socket) -> bool:
        """Handle one client line; True when the sandbox has ended."""
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(conn)
            conn.close()
            if conn in self.exec_connections:
                self.exec_connections.discard(conn)
                self.last_active = time.monotonic()
            return False
        command = data.decode(errors="replace").strip()
        if command == "terminate":
            self.kill()
            self.finish("terminated", 137)
            return True
        if command == "exec":
            self.exec_connections.add(conn)
        self.last_active = time.monotonic()
        return False


def main(argv: list[str]) -> int:
    sandbox_dir = Path(argv[1]).resolve()
    # Detach: the launcher exits at once; the supervisor lives on in the launcher's new session.
    if os.fork() > 0:
        os._exit(0)
    supervisor = Supervisor(sandbox_dir)
    started = supervisor.start()
    sys.stdout.write("ready\n" if started else "failed\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    if started:
        supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
