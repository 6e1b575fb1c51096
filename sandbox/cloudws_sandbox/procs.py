"""Every process of a local sandbox, found by a marker in its environment.

Claude Code starts each Bash tool in a session of its own, and is itself started in one, so no
process group or session holds a sandbox's whole tree, and a killed daemon leaves its agent and
tools running under init. The environment is inherited through all of that: each process of a
sandbox carries ``CLOUDWS_SANDBOX_DIR=<its state dir>``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

MARKER = "CLOUDWS_SANDBOX_DIR"


def marked_processes(prefix: str) -> list[int]:
    """Pids whose ``CLOUDWS_SANDBOX_DIR`` starts with ``prefix`` (a sandbox dir, or a parent of
    many), this process excluded."""
    wanted = f"{MARKER}={prefix}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(var.startswith(wanted) for var in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def kill_marked(prefix: str, sig: int = signal.SIGKILL) -> int:
    """Signal every process marked under ``prefix``; how many there were."""
    pids = marked_processes(prefix)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return len(pids)
