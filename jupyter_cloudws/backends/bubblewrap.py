"""What a local sandbox may see, as a bubblewrap command line, and whether bubblewrap works here.

The mount plan is a pure function of paths, so it can be checked without starting anything:
the system read-only; the sandbox's own directory (work tree, home, event log) and the paths it
must write (a local origin repository, the session's conversation) read-write; a fresh ``/tmp``;
and empty directories laid over everything it must not see (the server user's home, Jupyter's
runtime and config directories, the hub's data directory with the other sandboxes), with just
the files the runtime needs to start (the Python installation, the runtime package, the Claude
Code CLI) bound back read-only. Its own PID namespace ends every process with the daemon.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROBE_TIMEOUT_S = 10.0


class IsolationUnavailable(RuntimeError):
    """bubblewrap cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class MountPlan:
    """Host paths by what the sandbox may do with them (each seen at the same path inside)."""

    writable: Sequence[str]
    hidden: Sequence[str]
    readable: Sequence[str] = ()
    tmpfs: Sequence[str] = ("/tmp",)
    # Single files covered by /dev/null (mounted nodev, so not even that opens); directories go in ``hidden``.
    masked_files: Sequence[str] = ()
    extra_args: Sequence[str] = field(default=())


def _depth(path: str) -> int:
    return len(Path(path).parts)


def bwrap_argv(bwrap: str, plan: MountPlan, command: Sequence[str], *, chdir: str, info_fd: int | None,
               drop_caps: bool) -> list[str]:  # fmt: skip
    """The ``bwrap`` command line that runs ``command`` under ``plan``.

    bubblewrap applies mounts in order and a later mount wins below its path, so mounts go
    shallowest first; at equal depth a path is hidden before anything is bound back beneath it.
    """
    ops: list[tuple[int, int, list[str]]] = []
    for path in _existing(plan.hidden):
        ops.append((_depth(path), 0, ["--tmpfs", path]))
    for path in plan.tmpfs:
        ops.append((_depth(path), 0, ["--tmpfs", path]))
    for path in _existing(plan.readable):
        ops.append((_depth(path), 1, ["--ro-bind", path, path]))
    for path in _existing(plan.writable):
        ops.append((_depth(path), 2, ["--bind", path, path]))
    for path in _existing(plan.masked_files):
        ops.append((_depth(path), 3, ["--ro-bind", "/dev/null", path]))
    ops.sort(key=lambda op: (op[0], op[1]))
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for _, _, args in ops:
        argv += args
    # The network stays shared: the agent needs the model API and git. Everything else is its own.
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--new-session"]
    if drop_caps:
        # As root, bubblewrap would keep root's capabilities inside: the sandbox could unmount
        # what hides the host (seen: 'umount /root' succeeded). Without them it cannot.
        argv += ["--cap-drop", "ALL"]
    if info_fd is not None:
        argv += ["--info-fd", str(info_fd)]
    argv += [*plan.extra_args, "--chdir", chdir, "--", *command]
    return argv


def _existing(paths: Iterable[str]) -> list[str]:
    """Absolute, resolved, existing and distinct: bubblewrap cannot mount over a missing path
    in the read-only system, and a symlink would be followed to wherever it points."""
    seen: dict[str, None] = {}
    for raw in paths:
        if not raw:
            continue
        path = os.path.realpath(raw)
        if os.path.exists(path) and path != "/":
            seen.setdefault(path, None)
    return list(seen)


def probe(bwrap: str) -> str | None:
    """Why bubblewrap cannot isolate a sandbox on this machine, or ``None`` when it can."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux; this is {sys.platform}"
    path = shutil.which(bwrap)
    if path is None:
        return f"{bwrap!r} was not found (install Debian's 'bubblewrap' package)"
    plan = MountPlan(writable=(), hidden=())
    argv = bwrap_argv(path, plan, ["true"], chdir="/", info_fd=None, drop_caps=os.geteuid() == 0)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{path} could not run: {exc}"
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit code {done.returncode}"
        return f"{path} cannot create namespaces here ({detail}); user namespaces may be disabled"
    return None


def check_available(bwrap: str) -> str:
    """The resolved bwrap path; raises :class:`IsolationUnavailable` with the reason otherwise."""
    reason = probe(bwrap)
    if reason is not None:
        raise IsolationUnavailable(
            f"cannot isolate the sandbox: {reason}. Install bubblewrap, or run sandboxes without "
            "isolation with c.LocalBackend.isolation = 'none' (the agent can then read all your files)"
        )
    return shutil.which(bwrap) or bwrap
