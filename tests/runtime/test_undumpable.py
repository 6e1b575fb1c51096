"""The daemon (``serve``) and ``attach`` hold the git token in memory: both make themselves
non-dumpable, so a process of their uid (the agent's) that is not root cannot read their
``/proc/PID/environ`` or ``mem`` nor ptrace them. The real entry points run as ``nobody`` here,
and a reader as ``nobody`` too (root would bypass the check)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import cloudws_sandbox

RUNTIME_ROOT = str(Path(cloudws_sandbox.__file__).resolve().parent.parent)
NOBODY = 65534
SETPRIV = shutil.which("setpriv")
as_nobody = [SETPRIV or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
needs_setpriv = pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None,
                                   reason="needs root and setpriv to run a process as another uid")  # fmt: skip


def runtime_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": RUNTIME_ROOT, "CLOUDWS_SECRET_CANARY": "in-the-environment"}


def test_make_undumpable_clears_the_dumpable_flag_of_its_process() -> None:
    script = ("import ctypes, sys\n"
              "from cloudws_sandbox.__main__ import PR_GET_DUMPABLE, make_undumpable\n"
              "libc = ctypes.CDLL(None)\n"
              "before = libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)\n"
              "print(before, make_undumpable(), libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-S", "-c", script], env=runtime_env(), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True", "0"]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder ``nobody`` can write (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="cloudws-undumpable-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def environ_as_nobody(pid: int) -> subprocess.CompletedProcess[str]:
    reader = f"import sys\ntry:\n    open('/proc/{pid}/environ', 'rb').read()\nexcept OSError as e:\n    sys.exit(repr(e))\n"
    return subprocess.run([*as_nobody, sys.executable, "-S", "-c", reader], capture_output=True, text=True, timeout=60)


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        assert time.monotonic() < deadline_s, f"{path} never appeared"
        time.sleep(0.02)


@needs_setpriv
def test_a_same_uid_process_cannot_read_the_serving_daemons_environment(shared_dir: Path) -> None:
    state = shared_dir / "state"
    config = {"session_id": "s" * 32, "repo": "/nowhere", "branch": "cloudws/x", "cli_path": "/bin/false",
              "workdir": str(shared_dir / "repo")}  # fmt: skip
    # It writes config.json once past its start (so after the prctl), then waits for a file
    # that never comes: a live serve process, stopped by the test.
    proc = subprocess.Popen([*as_nobody, sys.executable, "-S", "-m", "cloudws_sandbox", "serve", "--state-dir",
                             str(state), "--config-json", json.dumps(config), "--wait-for", str(shared_dir / "never")],
                            env=runtime_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_for_file(state / "config.json", proc)
        read = environ_as_nobody(proc.pid)
        assert read.returncode != 0 and "PermissionError" in read.stderr, read
    finally:
        proc.kill()
        proc.wait()


@needs_setpriv
def test_a_same_uid_process_cannot_read_attachs_environment(shared_dir: Path) -> None:
    path = shared_dir / "bridge.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        path.chmod(0o777)
        listener.listen(1)
        listener.settimeout(30)
        proc = subprocess.Popen([*as_nobody, sys.executable, "-S", "-m", "cloudws_sandbox", "attach", "--socket",
                                 str(path)], env=runtime_env(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
        try:
            connection, _ = listener.accept()  # attach connects only after its prctl
            with connection:
                read = environ_as_nobody(proc.pid)
                assert read.returncode != 0 and "PermissionError" in read.stderr, read
        finally:
            proc.kill()
            proc.wait()
