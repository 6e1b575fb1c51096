"""Where a secret must never be: every process's command line, the environment of every process
a test started, and every file under a directory. Shared by the private-repository tests."""

from __future__ import annotations

import os
import threading
from pathlib import Path

SAMPLE_PERIOD_S = 0.02


class ProcessSampler:
    """Reads every process's command line, and the environment of every process this test
    started (the server's sandboxes, their daemons, agents and git calls), over and over on a
    thread, until stopped; records where the needle was found.

    Under pytest-xdist another worker's processes run beside the test's: their environments are
    never read (they are not this process's descendants), and their command lines cannot hold the
    needle, a token no other test module uses (a module's tests run on one worker, in turn)."""

    def __init__(self, needle: str) -> None:
        self.needle = needle.encode()
        self.found: list[str] = []
        self.samples = 0
        self.agent_environs = 0  # environments of a running Claude Code read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="token-sampler", daemon=True)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            parents: dict[int, int] = {}
            cmdlines: dict[int, bytes] = {}
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                pid = int(entry.name)
                try:
                    cmdlines[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
                except OSError:  # ended meanwhile
                    continue
            for pid, cmdline in cmdlines.items():
                if self.needle in cmdline:
                    self.found.append(f"cmdline of {pid}: {cmdline!r}")
            for pid in _descendants(me, parents):
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes()
                except OSError:
                    continue
                if self.needle in environ:
                    self.found.append(f"environ of {pid} ({cmdlines.get(pid, b'')[:200]!r})")
                if b"claude" in cmdlines.get(pid, b"").split(b"\0")[0] and b"CLAUDE_CONFIG_DIR=" in environ:
                    self.agent_environs += 1
            self.samples += 1
            self._stop.wait(SAMPLE_PERIOD_S)


def _descendants(root: int, parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    seen, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def files_holding(root: Path, needle: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle.encode() in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                pass
    return hits
