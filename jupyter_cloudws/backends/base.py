"""The narrow async interface every sandbox backend implements.

The hub only ever dials *out*: it asks the backend for a byte stream to the sandbox's runtime
daemon (a unix socket locally, ``sandbox.exec("python -m cloudws_sandbox attach")`` stdio on Modal) and
speaks the bridge protocol over it. Nothing here knows about sessions or events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from traitlets.config import LoggingConfigurable


class SandboxGone(RuntimeError):
    """The sandbox no longer exists or its daemon cannot be reached."""


@dataclass(frozen=True)
class SandboxSpec:
    session_id: str
    repo: str
    base_branch: str
    branch: str
    model: str | None = None
    # Values for the sandbox environment, secrets included: never logged, never in an event.
    env: dict[str, str] = field(default_factory=dict, repr=False)
    # Names of the variables whose values the sandbox redacts from everything it logs.
    secret_names: tuple[str, ...] = ()
    # A host directory holding the agent's conversation files for this session: the backend makes
    # it the sandbox's CLAUDE_CONFIG_DIR (locally bound in; remote backends copy it in and out),
    # so a replaced sandbox resumes the same conversation.
    conversation_dir: str | None = None


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str


class BridgeStream(Protocol):
    """A duplex byte stream carrying newline-delimited frames."""

    async def readline(self) -> bytes:
        """The next line including its newline; ``b""`` at end of stream."""

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

    async def create(self, spec: SandboxSpec) -> str:
        """Start a sandbox running the runtime daemon for ``spec``; return its id at once."""
        raise NotImplementedError

    async def is_alive(self, sandbox_id: str) -> bool:
        raise NotImplementedError

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
        raise NotImplementedError(f"the {self.name} backend cannot snapshot sandboxes")
