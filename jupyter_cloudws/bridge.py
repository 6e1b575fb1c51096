"""The hub's end of the bridge: JSON-line frames over any :class:`BridgeStream`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from .backends.base import BridgeStream
from cloudws_sandbox.protocol import ProtocolError, dumps, parse_bridge_reply

log = logging.getLogger("jupyter_cloudws.bridge")


class BridgeClosed(ConnectionError):
    pass


class BridgeClient:
    def __init__(self, stream: BridgeStream, sandbox_id: str) -> None:
        self.stream = stream
        self.sandbox_id = sandbox_id
        self.closed = False

    async def send(self, frame: dict[str, Any]) -> None:
        if self.closed:
            raise BridgeClosed(f"bridge to {self.sandbox_id} is closed")
        try:
            await self.stream.write((dumps(frame) + "\n").encode())
        except (ConnectionError, OSError) as exc:
            self.closed = True
            raise BridgeClosed(str(exc)) from exc

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        """Frames until the stream ends; a frame that breaks the protocol is logged and skipped."""
        while not self.closed:
            try:
                raw = await self.stream.readline()
            except (ConnectionError, OSError, ValueError) as exc:
                log.warning("bridge to %s broke: %s", self.sandbox_id, exc)
                break
            if not raw:
                break
            try:
                yield parse_bridge_reply(raw)
            except ProtocolError as exc:
                log.warning("sandbox %s sent a bad frame (%s): %r", self.sandbox_id, exc.message, raw[:200])
        self.closed = True

    async def close(self) -> None:
        self.closed = True
        await self.stream.close()
