"""One hub's bridge connection to the daemon: what it is owed, written in order, in bounded memory.

Frames wait in an outbox bounded in bytes. A hub that reads slower than the sandbox produces
(a stalled link, a stuck process) would otherwise make the daemon hold everything for it: past the
bound the connection is closed instead, and the hub reattaches and resumes from the last ``seq``
it stored, losing nothing.

A replay after an ``attach`` does not go through the outbox: it is read from the event log on
disk a page at a time, each page written only when the socket has taken the one before, so a
replay of a long log costs neither a giant list nor the outbox's room. Live events reach the
connection only once the replay has caught up; the check and the switch happen with no ``await``
in between, so no event falls into the gap or comes twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from .eventlog import EventLog
from .protocol import BRIDGE_MAX_LINE_BYTES, dumps

log = logging.getLogger("cloudws_sandbox.connection")

# Room for two of the largest frames the bridge allows: a normal burst never comes near it.
OUTBOX_MAX_BYTES = 2 * BRIDGE_MAX_LINE_BYTES
REPLAY_PAGE_EVENTS = 256


@dataclass(frozen=True)
class _Replay:
    after: int


def encode(frame: dict[str, Any]) -> bytes:
    return (dumps(frame) + "\n").encode()


class Connection:
    def __init__(self, writer: asyncio.StreamWriter, events: EventLog,
                 max_bytes: int = OUTBOX_MAX_BYTES) -> None:  # fmt: skip
        self.writer = writer
        self.events = events
        self.max_bytes = max_bytes
        self.live = False  # replay caught up: live events and deltas are sent
        self.closed = False
        self.overflowed = False
        self._outbox: deque[bytes | _Replay | None] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()

    # -- what to send (never blocks) ---------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        if self.closed:
            return
        data = encode(frame)
        if self._queued_bytes + len(data) > self.max_bytes:
            log.warning("a hub fell %d bytes behind: closing its connection (it resumes from its cursor)",
                        self._queued_bytes + len(data))  # fmt: skip
            self.overflowed = True
            self.abort()
            return
        self._outbox.append(data)
        self._queued_bytes += len(data)
        self._wakeup.set()

    def on_event(self, event: dict[str, Any]) -> None:
        """The event log's listener: until the replay has caught up, the replay sends it."""
        if self.live:
            self.send({"kind": "event", "event": event})

    def send_delta(self, frame: dict[str, Any]) -> None:
        # Deltas are never replayed: one that comes while the replay runs is of a block whose
        # final text the hub gets anyway.
        if self.live:
            self.send(frame)

    def replay(self, after: int) -> None:
        """Send every logged event past ``after`` (after what is queued now), then go live."""
        self.live = False
        self._outbox.append(_Replay(after))
        self._wakeup.set()

    def finish(self) -> None:
        """Close once everything queued is written."""
        self._outbox.append(None)
        self._wakeup.set()

    def abort(self) -> None:
        """Close now, dropping what is queued."""
        self.closed = True
        self._outbox.clear()
        self._queued_bytes = 0
        self.writer.transport.abort()
        self._wakeup.set()

    # -- the writer task ---------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while not self.closed:
                if not self._outbox:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                item = self._outbox.popleft()
                if item is None:
                    break
                if isinstance(item, _Replay):
                    await self._replay(item.after)
                else:
                    await self._write(item)
        except ConnectionError:
            pass
        finally:
            self.closed = True
            self.writer.close()

    async def _write(self, data: bytes) -> None:
        self._queued_bytes -= len(data)
        self.writer.write(data)
        # Always drain: the transport's own buffer must stay small, or the bound means nothing.
        await self.writer.drain()

    async def _replay(self, after: int) -> None:
        sent = after
        while not self.closed:
            if sent >= self.events.last_seq:
                self.live = True  # no await since the check: the next event is a live one
                return
            for event in self.events.read_after(sent, limit=REPLAY_PAGE_EVENTS):
                self.writer.write(encode({"kind": "event", "event": event}))
                sent = event["seq"]
                await self.writer.drain()
                if self.closed:
                    return
                # Answers (acks, pongs) queued meanwhile go out between events, not after a
                # replay that may take a while: a heartbeat must not time out behind it.
                while self._outbox and isinstance(self._outbox[0], bytes):
                    await self._write(self._outbox.popleft())  # type: ignore[arg-type]
