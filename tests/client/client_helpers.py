"""Helpers shared by the kernel-client tests: a real jupyter-server subprocess with the extension,
sandboxes running the real Claude Code CLI against the scripted fake API, and bare repositories.

The client is synchronous with a thread of its own, so it is tested against a server in another
process (an in-process server would share, and be blocked by, the test's own calls).
"""

from __future__ import annotations

from contextlib import contextmanager

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from support import kill_sandboxes, make_bare_repo  # noqa: F401 - make_bare_repo is re-exported

from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic
from jupyter_cloudws.testing.server import ServerProcess


def server_config(fake: FakeAnthropic, **settings: Any) -> dict[str, Any]:
    """``c.CloudWorkspaces`` for a server whose sandboxes run Claude Code offline against ``fake``."""
    return {
        **settings,
        "sandbox_env": {
            "ANTHROPIC_BASE_URL": fake.url,
            "ANTHROPIC_API_KEY": "sk-test-cloudws",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        },
        "local_user_name": "Ada Lovelace",
        "local_user_email": "ada@example.test",
        # The tests' repositories live in pytest's temporary directories, outside the default
        # roots (the server's root_dir and home).
        "local_repo_roots": [tempfile.gettempdir()],
    }


def start_server(root: Path, fake: FakeAnthropic, port: int | None = None, **settings: Any) -> ServerProcess:
    """A started server under ``root``; ``settings`` are more ``c.CloudWorkspaces`` values."""
    return ServerProcess(root, cloudws_config=server_config(fake, **settings)).start(port=port)


@contextmanager
def serving(root: Path, fake: FakeAnthropic, **settings: Any) -> Iterator[ServerProcess]:
    """A server under ``root`` for the block; stopped, and its sandboxes ended, afterwards."""
    proc = start_server(root, fake, **settings)
    try:
        yield proc
    finally:
        proc.stop()
        kill_sandboxes(sandboxes_dir(root))


def sandboxes_dir(root: Path) -> Path:
    """Where a ServerProcess under ``root`` keeps its cloudws data (for ``kill_sandboxes``)."""
    return root / "data" / "cloudws"


def until(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout_s} s")


class Recorder:
    """A subscriber callback that keeps every ``(kind, payload)`` it is given, with the thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.threads: set[str] = set()

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        self.threads.add(threading.current_thread().name)
        self.calls.append((kind, payload))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [payload for k, payload in list(self.calls) if k == kind]

    def event_seqs(self) -> list[int]:
        return [e["seq"] for e in self.of("event")]

    def states(self) -> list[str]:
        return [c["state"] for c in self.of("connection")]
