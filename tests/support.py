"""Helpers shared by test modules (fixtures live in conftest.py files). ``tests/`` is on
pytest's ``pythonpath``, so any test module can ``from support import ...``."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    """End every sandbox daemon under ``data_dir``: they outlive servers by design."""
    for pid_file in (data_dir / "sandboxes").glob("*/daemon.pid"):
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError, PermissionError):
            pass


def completed(message_id: str) -> Callable[[dict[str, Any]], bool]:
    """Predicate: the live event that ends ``message_id``."""
    return lambda f: f["type"] == "event" and f["event"]["type"] == "execution_complete" and (
        f["event"]["message_id"] == message_id
    )
