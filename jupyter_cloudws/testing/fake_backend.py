"""A scripted :class:`SandboxBackend` for tests that stage the hub's interleavings by hand.

Each :class:`FakeSandbox` plays the runtime daemon's side of the bridge in memory: it answers
``attach`` with ``attached`` and its backlog, ``prompt`` with ``ack``, ``ping`` with ``pong``,
and keeps an event log that the test writes to (``emit``, ``complete``). Every step that the
hub awaits can be held at a gate (an :class:`asyncio.Event`) or made to fail, so a test decides
exactly when a spawn, an attach, a loss or a termination happens, with no sleeps.

    backend = FakeBackend()
    hub = SessionHub(SessionStore(":memory:"), backend, HubSettings())
    ...
    sandbox = await backend.wait_for_sandbox()
    await sandbox.wait_for_prompt()
    sandbox.complete(message_id)
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cloudws_sandbox.protocol import EventBody, ExecutionComplete, SandboxStatusEvent, make_event

from ..backends.base import (
    BridgeStream, ExecResult, Liveness, ProgressFn, SandboxBackend, SandboxGone, SandboxSpec, SnapshotGone,
)  # fmt: skip

_ids = itertools.count(1)


async def until(predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Let the event loop run until ``predicate()`` is truthy and return its value; fail after
    ``timeout_s``. The loop only yields (``sleep(0)``) at first: staged steps need turns of the
    loop, not time. Only a test that set a real timer (a heartbeat, an attach timeout) waits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    ticks = 0
    while not (value := predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached in {timeout_s} s")
        ticks += 1
        await asyncio.sleep(0 if ticks < 1000 else 0.001)
    return value


async def settle(ticks: int = 200) -> None:
    """Let whatever is ready run (``ticks`` turns of the loop), for checks that nothing happens."""
    for _ in range(ticks):
        await asyncio.sleep(0)


class FakeStream:
    """One bridge connection: what the hub writes goes to the sandbox's handler, what the
    sandbox sends waits in ``lines`` for the hub's ``readline``."""

    def __init__(self, sandbox: FakeSandbox, faults: dict[str, BaseException]) -> None:
        self.sandbox = sandbox
        self._faults = faults
        self.lines: asyncio.Queue[bytes] = asyncio.Queue()
        self.ops: list[dict[str, Any]] = []
        self.closed = False
        self.attached = False
        self.write_error: BaseException | None = None  # raised by the next writes when set

    # -- BridgeStream ---------------------------------------------------------------------

    async def readline(self) -> bytes:
        item = await self.lines.get()
        if isinstance(item, BaseException):
            raise item
        if item == b"":
            self.lines.put_nowait(b"")  # end of stream stays the end
        return item

    async def write(self, data: bytes) -> None:
        if self.write_error is not None:
            raise self.write_error
        if self.closed:
            raise ConnectionResetError("the fake bridge is closed")
        for line in data.decode().splitlines():
            op = json.loads(line)
            self.ops.append(op)
            self.sandbox._on_op(self, op)
            fault = self._faults.pop(str(op.get("op")), None)
            if fault is not None:
                raise fault  # after delivery: the hub fails once the sandbox has the op

    async def close(self) -> None:
        self.hang_up()

    # -- the test's (and the fake sandbox's) side ----------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        if not self.closed:
            self.lines.put_nowait((json.dumps(frame) + "\n").encode())

    def send_raw(self, data: bytes) -> None:
        """Bytes as they come, for malformed or oversized lines."""
        self.lines.put_nowait(data)

    def fail_read(self, exc: BaseException) -> None:
        """The hub's next ``readline`` raises ``exc``."""
        self.lines.put_nowait(exc)  # type: ignore[arg-type]

    def hang_up(self) -> None:
        """The link ends (the hub's reader sees end of stream); the sandbox lives on."""
        if not self.closed:
            self.closed = True
            self.sandbox.streams.discard(self)
            self.lines.put_nowait(b"")

    def ops_named(self, name: str) -> list[dict[str, Any]]:
        return [op for op in self.ops if op.get("op") == name]


@dataclass(eq=False)
class FakeSandbox:
    """One sandbox's daemon, in memory."""

    id: str
    spec: SandboxSpec
    liveness: Liveness = Liveness.ALIVE
    # How the daemon behaves; a test flips these at any point.
    answer_attach: bool = True
    answer_ping: bool = True
    events: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    streams: set[FakeStream] = field(default_factory=set)
    connections: list[FakeStream] = field(default_factory=list)  # every one ever made, in order
    attached_streams: list[FakeStream] = field(default_factory=list)
    _prompt_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    @property
    def stream(self) -> FakeStream:
        """The newest attached connection."""
        return self.attached_streams[-1]

    def emit(self, body: EventBody | dict[str, Any]) -> dict[str, Any]:
        """Log an event and send it to every attached connection, as the daemon does."""
        event = make_event(body, self.last_seq + 1)
        self.events.append(event)
        for stream in list(self.streams):
            if stream.attached:
                stream.send({"kind": "event", "event": event})
        return event

    def ready(self) -> dict[str, Any]:
        return self.emit(SandboxStatusEvent("ready", "on branch"))

    def complete(self, message_id: str, success: bool = True, **fields: Any) -> dict[str, Any]:
        return self.emit(ExecutionComplete(message_id, success, **fields))

    def hang_up(self) -> None:
        """Every link to this sandbox breaks; the sandbox itself lives on."""
        for stream in list(self.streams):
            stream.hang_up()

    def die(self) -> None:
        self.liveness = Liveness.DEAD
        self.hang_up()

    async def wait_for_prompt(self, count: int = 1) -> dict[str, Any]:
        """The ``count``-th distinct prompt this sandbox was given."""
        while len(self.prompts) < count:
            self._prompt_arrived.clear()
            await self._prompt_arrived.wait()
        return self.prompts[count - 1]

    def _on_op(self, stream: FakeStream, op: dict[str, Any]) -> None:
        name = op.get("op")
        if name == "attach" and self.answer_attach:
            stream.attached = True
            self.attached_streams.append(stream)
            stream.send({"kind": "attached", "last_seq": self.last_seq, "busy": None,
                         "session_id": self.spec.session_id})  # fmt: skip
            for event in self.events:
                if event["seq"] > (op.get("after") or 0):
                    stream.send({"kind": "event", "event": event})
        elif name == "prompt":
            duplicate = any(p["message_id"] == op["message_id"] for p in self.prompts)
            if not duplicate:
                self.prompts.append(op)
                self._prompt_arrived.set()
            stream.send({"kind": "ack", "op": "prompt", "message_id": op["message_id"], "duplicate": duplicate})
        elif name == "ping" and self.answer_ping:
            stream.send({"kind": "pong"})
        elif name == "interrupt":
            stream.send({"kind": "ack", "op": "interrupt", "message_id": None})


class FakeBackend(SandboxBackend):
    """Sandboxes as :class:`FakeSandbox` objects. Set a ``*_gate`` (an unset
    :class:`asyncio.Event`) to hold that call until the test sets it, or a ``*_error`` to make
    it raise.

    Snapshots: set ``supports_snapshot`` to take them. Each is recorded in ``snapshots`` (id ->
    the sandbox it was taken of) until deleted; ``create`` from one that is not there (deleted,
    or dropped by :meth:`expire_snapshot`) raises :class:`SnapshotGone`."""

    name: ClassVar[str] = "fake"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.created: list[FakeSandbox] = []
        self.terminated: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.create_gate: asyncio.Event | None = None
        self.connect_gate: asyncio.Event | None = None
        self.create_error: BaseException | None = None
        self.connect_error: BaseException | None = None
        self.terminate_error: BaseException | None = None
        self.liveness_error: BaseException | None = None  # is_alive raises: the backend cannot tell
        self.exit_reason_error: BaseException | None = None
        # Op name -> exception raised by the hub's write of that op, once, after the sandbox got it.
        self.write_faults: dict[str, BaseException] = {}
        self._created_event = asyncio.Event()
        self.supports_snapshot = False  # type: ignore[misc]  # per fake, where real backends fix it per class
        self.snapshots: dict[str, str] = {}
        self.snapshot_calls: list[str] = []  # the sandbox of every snapshot begun, in order
        self.deleted_snapshots: list[str] = []
        self.saved_conversations: list[tuple[str, str]] = []  # (sandbox id, conversation dir)
        self.snapshot_gate: asyncio.Event | None = None
        self.snapshot_error: BaseException | None = None
        self.save_conversation_error: BaseException | None = None

    def sandbox(self, sandbox_id: str) -> FakeSandbox:
        try:
            return self.sandboxes[sandbox_id]
        except KeyError:
            raise SandboxGone(f"no fake sandbox {sandbox_id!r}") from None

    async def wait_for_sandbox(self, count: int = 1) -> FakeSandbox:
        """The ``count``-th sandbox created."""
        while len(self.created) < count:
            self._created_event.clear()
            await self._created_event.wait()
        return self.created[count - 1]

    async def create(self, spec: SandboxSpec, progress: ProgressFn | None = None) -> str:
        self.calls.append(("create", spec.session_id))
        if self.create_gate is not None:
            await self.create_gate.wait()
        if self.create_error is not None:
            raise self.create_error
        if spec.restore_from is not None and spec.restore_from not in self.snapshots:
            raise SnapshotGone(f"no fake snapshot {spec.restore_from!r}")
        sandbox = FakeSandbox(f"fake-{next(_ids)}", spec)
        self.sandboxes[sandbox.id] = sandbox
        self.created.append(sandbox)
        self._created_event.set()
        return sandbox.id

    async def is_alive(self, sandbox_id: str) -> bool:
        self.calls.append(("is_alive", sandbox_id))
        if self.liveness_error is not None:
            raise self.liveness_error
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            return False
        if sandbox.liveness is Liveness.UNKNOWN:
            raise ConnectionError("the fake backend cannot tell")
        return sandbox.liveness is Liveness.ALIVE

    async def connect(self, sandbox_id: str) -> BridgeStream:
        self.calls.append(("connect", sandbox_id))
        if self.connect_gate is not None:
            await self.connect_gate.wait()
        if self.connect_error is not None:
            raise self.connect_error
        sandbox = self.sandbox(sandbox_id)
        if sandbox.liveness is Liveness.DEAD:
            raise SandboxGone(f"fake sandbox {sandbox_id} is dead")
        stream = FakeStream(sandbox, self.write_faults)
        sandbox.streams.add(stream)
        sandbox.connections.append(stream)
        return stream

    async def exec(self, sandbox_id: str, argv: list[str], timeout_s: float = 60.0) -> ExecResult:
        self.sandbox(sandbox_id)
        return ExecResult(0, "", "")

    async def terminate(self, sandbox_id: str) -> None:
        self.calls.append(("terminate", sandbox_id))
        if self.terminate_error is not None:
            raise self.terminate_error
        self.terminated.append(sandbox_id)
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is not None:
            sandbox.die()

    async def exit_reason(self, sandbox_id: str) -> str:
        if self.exit_reason_error is not None:
            raise self.exit_reason_error
        return f"fake sandbox {sandbox_id} stopped"

    async def snapshot(self, sandbox_id: str) -> str:
        self.calls.append(("snapshot", sandbox_id))
        self.snapshot_calls.append(sandbox_id)
        if self.snapshot_gate is not None:
            await self.snapshot_gate.wait()
        if self.snapshot_error is not None:
            raise self.snapshot_error
        if self.sandbox(sandbox_id).liveness is Liveness.DEAD:
            raise SandboxGone(f"fake sandbox {sandbox_id} is dead")
        snapshot_id = f"fake-snap-{next(_ids)}"
        self.snapshots[snapshot_id] = sandbox_id
        return snapshot_id

    async def delete_snapshot(self, snapshot_id: str) -> None:
        self.calls.append(("delete_snapshot", snapshot_id))
        self.deleted_snapshots.append(snapshot_id)
        self.snapshots.pop(snapshot_id, None)

    async def save_conversation(self, sandbox_id: str, conversation_dir: str) -> None:
        self.calls.append(("save_conversation", sandbox_id))
        if self.save_conversation_error is not None:
            raise self.save_conversation_error
        self.saved_conversations.append((sandbox_id, conversation_dir))

    def expire_snapshot(self, snapshot_id: str) -> None:
        """The snapshot vanishes behind the hub's back (expired, removed by hand)."""
        self.snapshots.pop(snapshot_id, None)


__all__ = ["FakeBackend", "FakeSandbox", "FakeStream", "settle", "until"]
