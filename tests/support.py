"""Helpers shared by test modules (fixtures live in conftest.py files). ``tests/`` is on
pytest's ``pythonpath``, so any test module can ``from support import ...``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_cloudws.backends.local import INFO_FILE, first_child, namespace_init
from cloudws_sandbox.procs import kill_marked, marked_processes

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Seed",
    "GIT_AUTHOR_EMAIL": "seed@example.test",
    "GIT_COMMITTER_NAME": "Seed",
    "GIT_COMMITTER_EMAIL": "seed@example.test",
}


def git(*args: str, cwd: Path | str | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **GIT_IDENTITY}
    ).stdout.strip()


def make_bare_repo(root: Path, name: str = "project", files: dict[str, str] | None = None) -> Path:
    """A bare repository ``root/remotes/NAME.git`` with one commit on ``main`` holding ``files``."""
    bare = root / "remotes" / f"{name}.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    seed = root / "seeds" / name
    git("clone", "--quiet", str(bare), str(seed))
    for rel, content in (files or {"README.md": f"# {name}\n"}).items():
        (seed / rel).parent.mkdir(parents=True, exist_ok=True)
        (seed / rel).write_text(content)
    git("add", "--all", cwd=seed)
    git("commit", "--quiet", "-m", "initial commit", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:main", cwd=seed)
    return bare


def kill_sandboxes(data_dir: Path) -> None:
    """End every sandbox process under ``data_dir``: daemons outlive servers by design, and
    agents and their tools run in sessions of their own."""
    kill_marked(str(data_dir / "sandboxes"))


def crash_daemon(sandbox_dir: Path) -> None:
    """SIGKILL a sandbox's daemon, and only it, as a crash would. Under bubblewrap the daemon is
    the child of the PID namespace's init (bwrap-info.json names it); without, daemon.pid is it."""
    init_pid = namespace_init(sandbox_dir / INFO_FILE)
    pid = first_child(init_pid) if init_pid is not None else int((sandbox_dir / "daemon.pid").read_text())
    os.kill(pid, signal.SIGKILL)


def sandbox_commands(data_dir: Path) -> list[str]:
    """The command lines of the processes running in sandboxes under ``data_dir``."""
    commands = []
    for pid in marked_processes(str(data_dir / "sandboxes")):
        try:
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
        except OSError:
            pass
    return commands


async def eventually(check: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.1) -> Any:
    """Poll ``check`` until it is truthy or ``timeout_s`` passes; its last value either way."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (value := check()) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(interval_s)
    return value


def completed(message_id: str) -> Callable[[dict[str, Any]], bool]:
    """Predicate: the live event that ends ``message_id``."""
    return lambda f: f["type"] == "event" and f["event"]["type"] == "execution_complete" and (
        f["event"]["message_id"] == message_id
    )
