"""The narrow async interface every sandbox backend implements.

The hub only ever dials *out*: it asks the backend for a byte stream to the sandbox's runtime
daemon (a unix socket locally, ``sandbox.exec("python -m cloudws_sandbox attach")`` stdio on Modal) and
speaks the bridge protocol over it. Nothing here knows about sessions or events.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from enum import Enum
from collections.abc import Callable
from typing import ClassVar, Protocol

from traitlets.config import LoggingConfigurable


log = logging.getLogger("jupyter_cloudws.backends")


class SandboxGone(RuntimeError):
    """The sandbox no longer exists or its daemon cannot be reached."""


class SnapshotGone(SandboxGone):
    """The image a sandbox was to start from (a snapshot, a prebuilt repository image) is missing
    or expired: the hub falls back to a clone, and says so."""


# Called by ``create`` as the steps it owns run: (step, state, detail). Steps and states are
# ``protocol.PROGRESS_STEPS`` / ``PROGRESS_STATES``; a backend reports "image" and "start".
ProgressFn = Callable[[str, str, str], None]


class Liveness(Enum):
    """The backend's answer to "is this sandbox alive?". ``UNKNOWN`` means it could not tell
    (an API error, a timeout): the hub then neither kills nor replaces the sandbox."""

    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"


class LineTooLong(Exception):
    """A line longer than the stream's limit came in; it was read to its end and discarded,
    so the stream is still usable."""

    def __init__(self, size_bytes: int, max_bytes: int) -> None:
        super().__init__(f"a line of at least {size_bytes} bytes exceeds the limit of {max_bytes} bytes")
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes


async def read_bounded_line(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    """The next line (with its newline; ``b""`` at end of stream) from ``reader``, which must
    have been made with a ``limit`` of at least ``max_bytes``. A longer line is consumed to its
    end without being held whole, then :class:`LineTooLong` is raised."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        line = exc.partial  # the stream ended in the middle of a line
    except asyncio.LimitOverrunError as exc:
        raise LineTooLong(await _drop_line(reader, exc.consumed), max_bytes) from None
    if len(line) > max_bytes:
        raise LineTooLong(len(line), max_bytes)
    return line


async def _drop_line(reader: asyncio.StreamReader, consumed: int) -> int:
    """Read past the rest of an overlong line, a buffer at a time; return the bytes dropped.
    ``consumed`` is how much of it the reader holds (from its ``LimitOverrunError``)."""
    dropped = 0
    while True:
        try:
            if consumed:
                dropped += len(await reader.readexactly(consumed))
            return dropped + len(await reader.readuntil(b"\n"))
        except asyncio.IncompleteReadError as end:
            return dropped + len(end.partial)
        except asyncio.LimitOverrunError as more:
            consumed = more.consumed


@dataclass(frozen=True)
class SandboxSpec:
    session_id: str
    repo: str
    base_branch: str
    branch: str
    model: str | None = None
    owner: str = ""  # the session's owner: a label on remote sandboxes, for whoever lists them
    # Values for the sandbox environment, secrets included: never logged, never in an event.
    env: dict[str, str] = field(default_factory=dict, repr=False)
    # Names of the variables whose values the sandbox redacts from everything it logs.
    secret_names: tuple[str, ...] = ()
    # A host directory holding the agent's conversation files for this session: the backend makes
    # it the sandbox's CLAUDE_CONFIG_DIR (locally bound in; remote backends copy it in and out),
    # so a replaced sandbox resumes the same conversation.
    conversation_dir: str | None = None
    # Start from this image instead of a fresh clone: a snapshot of an earlier sandbox of the
    # session (``restore_kind`` "snapshot": work tree, branch and conversation as they were), or a
    # prebuilt image of the repository ("prebuild": cloned at the base branch, setup script run).
    # Raises :class:`SnapshotGone` from ``create`` when the image is missing or expired.
    restore_from: str | None = None
    restore_kind: str = "snapshot"
    # A repository prebuild (``jupyter cloudws prebuild``): the daemon clones, runs the setup
    # script and reports ``ready`` without starting the agent; the hub then snapshots it.
    # Backends pass it on as ``DaemonConfig.prebuild``.
    prebuild: bool = False
    setup_timeout_s: float = 1800.0  # the repository's .cloudws/setup.sh may run this long
    # The repository needs the git credential the hub sends over the bridge after each attach:
    # the daemon's clone and fetch wait for it. Backends pass it on as ``DaemonConfig.git_credentials``.
    git_credentials: bool = False


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str


class BridgeStream(Protocol):
    """A duplex byte stream carrying newline-delimited frames."""

    async def readline(self) -> bytes:
        """The next line including its newline; ``b""`` at end of stream. A line over the
        stream's limit raises :class:`LineTooLong` once it has been read past and dropped."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class SandboxBackend(LoggingConfigurable):
    """Create, reach and end sandboxes. Subclasses set ``name`` and the capability flags."""

    name: ClassVar[str] = ""
    supports_snapshot: ClassVar[bool] = False
    # Whether a sandbox outlives the Jupyter server that created it and can be re-attached by id.
    supports_reattach: ClassVar[bool] = True

    @property
    def isolation_label(self) -> str:
        """How sandboxes are kept apart from the host, for ``GET status`` and the chat badge."""
        return "unknown"

    async def create(self, spec: SandboxSpec, progress: ProgressFn | None = None) -> str:
        """Start a sandbox running the runtime daemon for ``spec``; return its id once it is
        started (the daemon then clones and reports its own steps). ``progress`` hears of the
        steps ``create`` itself takes ("image", "start")."""
        raise NotImplementedError

    async def is_alive(self, sandbox_id: str) -> bool:
        raise NotImplementedError

    async def liveness(self, sandbox_id: str) -> Liveness:
        """Alive, dead, or unknown when the backend could not tell. The default asks
        :meth:`is_alive` and takes an exception from it for "unknown"; a backend that can tell
        "gone" from "could not ask" better overrides this."""
        try:
            alive = await self.is_alive(sandbox_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("could not tell whether sandbox %s is alive: %s", sandbox_id, exc)
            return Liveness.UNKNOWN
        return Liveness.ALIVE if alive else Liveness.DEAD

    async def connect(self, sandbox_id: str) -> BridgeStream:
        """A fresh byte stream to the sandbox's daemon; raises :class:`SandboxGone`."""
        raise NotImplementedError

    async def exec(self, sandbox_id: str, argv: list[str], timeout_s: float = 60.0) -> ExecResult:
        raise NotImplementedError

    async def terminate(self, sandbox_id: str) -> None:
        raise NotImplementedError

    async def exit_reason(self, sandbox_id: str) -> str:
        """Why a dead sandbox died, for the ``sandbox_status failed`` event."""
        return "the sandbox stopped"

    async def snapshot(self, sandbox_id: str) -> str:
        """Snapshot the sandbox's filesystem (work tree, branch, the agent's conversation); return
        an id that ``SandboxSpec.restore_from`` accepts. Only when ``supports_snapshot``."""
        raise NotImplementedError(f"the {self.name} backend cannot snapshot sandboxes")

    async def delete_snapshot(self, snapshot_id: str) -> None:
        """Let go of a snapshot no session needs any more (a backend whose snapshots expire by
        themselves does nothing)."""

    async def save_conversation(self, sandbox_id: str, conversation_dir: str) -> None:
        """Copy the agent's conversation out of the sandbox into ``conversation_dir``, so a
        sandbox started without a snapshot resumes it. Backends that bind the directory in (the
        local one) have nothing to do."""

    async def orphans(self, claimed: set[str]) -> list[str]:
        """Ids of sandboxes this hub started that no session claims (``claimed`` holds the ones
        sessions know). The hub terminates them at start. A backend that cannot list its
        sandboxes returns none. One this backend object started or reached is never listed: a
        spawn under way has not stored its id in the session yet."""
        return []
