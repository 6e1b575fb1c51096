"""The hub's end of the bridge: JSON-line frames over any :class:`BridgeStream`.

Everything a sandbox sends is untrusted: a frame that breaks the protocol (malformed, of a
kind or event type a sandbox may not send, with fields of the wrong type, or over the size
limit) is handed to ``on_bad_frame`` and skipped; the link stays up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from .backends.base import BridgeStream, LineTooLong
from .github.settings import GitCredential
from cloudws_sandbox.protocol import ProtocolError, bridge_credentials, dumps, parse_bridge_reply

log = logging.getLogger("jupyter_cloudws.bridge")


class BridgeClosed(ConnectionError):
    pass


BadFrameHandler = Callable[["BridgeClient", str, str], None]  # (bridge, code, message)


class BridgeClient:
    def __init__(
        self,
        stream: BridgeStream,
        sandbox_id: str,
        *,
        on_bad_frame: BadFrameHandler | None = None,
        silence_timeout_s: float | None = None,
    ) -> None:
        self.stream = stream
        self.sandbox_id = sandbox_id
        self.closed = False
        self.bad_frames = 0  # refused frames on this connection
        self._on_bad_frame = on_bad_frame
        self._silence_timeout_s = silence_timeout_s

    async def send(self, frame: dict[str, Any]) -> None:
        if self.closed:
            raise BridgeClosed(f"bridge to {self.sandbox_id} is closed")
        try:
            await self.stream.write((dumps(frame) + "\n").encode())
        except (ConnectionError, OSError) as exc:
            self.closed = True
            raise BridgeClosed(str(exc)) from exc

    async def send_credential(self, credential: GitCredential | None) -> None:
        """Hand the daemon the git credential its clone, fetch and push use (none: nothing sent).
        Sent after every attach: the daemon holds it in memory only."""
        if credential is not None:
            await self.send(bridge_credentials(credential.protocol, credential.host, credential.username,
                                               credential.password))  # fmt: skip

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        """Frames until the stream ends, breaks, or stays silent past ``silence_timeout_s``."""
        while not self.closed:
            try:
                raw = await asyncio.wait_for(self.stream.readline(), self._silence_timeout_s)
            except LineTooLong as exc:
                self._bad_frame("too_large", str(exc))
                continue
            except asyncio.TimeoutError:
                log.warning("bridge to %s silent for %g s: taken as lost", self.sandbox_id, self._silence_timeout_s)
                break
            except (ConnectionError, OSError, ValueError) as exc:
                log.warning("bridge to %s broke: %s", self.sandbox_id, exc)
                break
            if not raw:
                break
            try:
                frame = parse_bridge_reply(raw)
            except ProtocolError as exc:
                self._bad_frame(exc.code, exc.message)
                continue
            except Exception as exc:  # whatever a line holds, it must not end the reader
                log.exception("parsing a frame from sandbox %s failed", self.sandbox_id)
                self._bad_frame("malformed", f"the frame could not be read: {exc!r}")
                continue
            yield frame
        self.closed = True

    def _bad_frame(self, code: str, message: str) -> None:
        if self._on_bad_frame is not None:
            self._on_bad_frame(self, code, message)
        else:
            self.bad_frames += 1
            log.warning("sandbox %s sent a bad frame (%s): %s", self.sandbox_id, code, message)

    async def close(self) -> None:
        self.closed = True
        await self.stream.close()
