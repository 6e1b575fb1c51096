"""The live stream of one session over the hub's WebSocket, run on the Client's loop thread.

It subscribes after the last ``seq`` it has (0 at first) and pages through ``has_more`` replies
until it is live. Events go into the :class:`~.transcript.Transcript`, which drops those it has
and refuses gaps (a gap in the live stream makes it subscribe again after its last ``seq``). On a
lost connection it reconnects with exponential backoff, up to ``max_attempts`` times, then
reports ``failed``; :meth:`SessionStream.ensure_running` starts it again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from cloudws_sandbox.protocol import dumps
from .background import LoopThread
from .errors import ConnectionLost
from .transcript import SeqGap, Transcript

log = logging.getLogger("jupyter_cloudws.client")

Emit = Callable[[str, dict[str, Any]], None]
MAX_FRAME_BYTES = 256 * 1024 * 1024  # a replay page holds up to replay_limit events of 64 kB output each
_FATAL_STATUSES = (401, 403, 404)  # waiting will not change these answers


class _Fatal(Exception):
    """A refusal that retrying cannot mend."""


class _Lost(Exception):
    """The connection ended without an error of its own (the server closed it)."""


def backoff_s(attempt: int, base_s: float, cap_s: float) -> float:
    """Delay before reconnect attempt ``attempt`` (1-based): base, doubling, capped."""
    return min(base_s * 2 ** (attempt - 1), cap_s)


class SessionStream:
    """Keeps ``transcript`` up to date with the session at ``ws_url`` while it runs.

    ``on_session`` gets each session dict the hub sends; ``emit(kind, payload)`` is called on
    the loop thread with ``event`` (once per new event, in order), ``delta``, ``session`` and
    ``connection``.
    """

    def __init__(
        self,
        loop: LoopThread,
        ws_url: str,
        headers: dict[str, str],
        transcript: Transcript,
        on_session: Callable[[dict[str, Any]], None],
        emit: Emit,
        *,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 8.0,
        ping_interval_s: float = 15.0,
        open_timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        use_env_proxy: bool = True,
    ) -> None:
        self.ws_url = ws_url
        self._use_env_proxy = use_env_proxy  # False: connect directly whatever HTTP_PROXY etc. say
        self._ssl_context = ssl_context  # for a wss:// URL only (websockets refuses one for ws://)
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.ping_interval_s = ping_interval_s
        self.open_timeout_s = open_timeout_s
        self._loop = loop
        self._headers = headers
        self._transcript = transcript
        self._on_session = on_session
        self._emit = emit
        self._lock = threading.Lock()
        self._future: concurrent.futures.Future[None] | None = None
        self._synced = False  # caught up at least once since the last (re)start
        self._awaiting_reply = False  # a subscribe is out: frames of the older subscription are stale
        self._last_frame_at = 0.0  # monotonic time of the last frame from the hub
        self._ws: ClientConnection | None = None
        self.state = "idle"  # idle | connecting | connected | reconnecting | failed
        self.error: str | None = None
        self.last_report: dict[str, Any] = {"state": "idle", "attempt": 0, "max_attempts": max_attempts, "error": None}

    # -- called from any thread -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def ensure_running(self) -> None:
        """Start the stream unless it runs (a failed or stopped one starts afresh)."""
        with self._lock:
            if self.running and self.state != "failed":  # a failed run is only returning
                return
            self._synced = False
            self.state, self.error = "connecting", None
            self._future = self._loop.submit(self._run())

    def wait_synced(self, timeout_s: float | None) -> None:
        """Block until the stream has caught up with the hub once; raises ConnectionLost if it
        failed first, TimeoutError when ``timeout_s`` runs out."""

        def check(_events: Any) -> str | None:
            if self._synced:
                return "synced"
            if self.state == "failed" or not self.running:
                return "failed"
            return None

        outcome = self._transcript.wait_until(check, timeout_s)
        if outcome == "failed":
            raise ConnectionLost(0, "stream_failed", f"could not follow the session at {self.ws_url}: {self.error}")
        if outcome is None:
            raise TimeoutError(f"the session's events did not arrive within {timeout_s} s (stream: {self.state})")

    def send_soon(self, frame: dict[str, Any]) -> None:
        """Send a hint (``typing``) if connected; when not, it is dropped: hints need no delivery."""

        async def send() -> None:
            ws = self._ws
            if ws is not None:
                try:
                    await ws.send(dumps(frame))
                except WebSocketException:
                    pass

        self._loop.submit(send())

    def stop(self) -> None:
        with self._lock:
            if self._future is not None:
                self._future.cancel()

    # -- on the loop thread -----------------------------------------------------------------

    def _report(self, state: str, attempt: int, error: str | None) -> None:
        self.state, self.error = state, error
        self.last_report = {"state": state, "attempt": attempt, "max_attempts": self.max_attempts, "error": error}
        self._transcript.changed()
        self._emit("connection", self.last_report)

    async def _run(self) -> None:
        attempt = 0  # reconnect attempts since the last good connection
        error: str | None = None
        while True:
            if attempt:
                self._report("reconnecting", attempt, error)
                await asyncio.sleep(backoff_s(attempt, self.backoff_base_s, self.backoff_cap_s))
            else:
                self._report("connecting", 0, error)
            connected = False

            def on_connected(attempt: int = attempt) -> None:
                nonlocal connected
                connected = True
                self._report("connected", attempt, None)

            try:
                await self._follow(on_connected)
            except asyncio.CancelledError:
                self.state = "idle"
                self._transcript.changed()
                raise
            except _Fatal as exc:
                self._report("failed", attempt, str(exc))
                return
            except (OSError, WebSocketException, asyncio.TimeoutError, _Lost) as exc:
                error = _describe(exc)
                log.info("stream %s: %s", self.ws_url, error)
            except Exception as exc:  # a frame we could not read: start over from our last seq
                error = _describe(exc)
                log.warning("stream %s failed: %s", self.ws_url, error, exc_info=True)
            attempt = 1 if connected else attempt + 1
            if attempt > self.max_attempts:
                self._report("failed", self.max_attempts, error)
                return

    async def _follow(self, on_connected: Callable[[], None]) -> None:
        """One connection: subscribe, page until live, then take frames until it ends."""
        tls: dict[str, Any] = {"ssl": self._ssl_context} if self._ssl_context and self.ws_url.startswith("wss:") else {}
        proxy: dict[str, Any] = {} if self._use_env_proxy else {"proxy": None}
        try:
            ws = await connect(
                self.ws_url, additional_headers=self._headers, open_timeout=self.open_timeout_s,
                ping_interval=self.ping_interval_s, ping_timeout=self.ping_interval_s, close_timeout=2,
                max_size=MAX_FRAME_BYTES, **tls, **proxy,
            )  # fmt: skip
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in _FATAL_STATUSES:
                raise _Fatal(f"the server refused the stream with HTTP {status}") from None
            raise
        async with ws:
            self._ws = ws
            await self._subscribe(ws)
            pinger = asyncio.get_running_loop().create_task(self._ping(ws))
            try:
                await self._read(ws, on_connected)
            finally:
                pinger.cancel()
                self._ws = None
        raise _Lost("the server closed the connection")

    async def _subscribe(self, ws: ClientConnection) -> None:
        self._awaiting_reply = True
        await ws.send(dumps({"type": "subscribe", "after": self._transcript.last_seq}))

    async def _read(self, ws: ClientConnection, on_connected: Callable[[], None]) -> None:
        first_reply = True
        async for raw in ws:
            self._last_frame_at = time.monotonic()
            frame = json.loads(raw)
            kind = frame.get("type") if isinstance(frame, dict) else None
            if kind == "subscribed":
                if first_reply:
                    first_reply = False
                    on_connected()
                self._take_session(frame.get("session"), emit=False)
                for event in frame.get("events") or []:
                    # The hub answered "after last_seq" itself: a gap here is in its log.
                    self._take_event(event, allow_gap=True)
                if frame.get("has_more"):
                    await self._subscribe(ws)
                    continue
                self._awaiting_reply = False
                self._synced = True
                self._transcript.changed()
            elif kind == "event" and not self._awaiting_reply:
                try:
                    self._take_event(frame["event"], allow_gap=False)
                except SeqGap as gap:
                    log.warning("stream %s: %s; subscribing again", self.ws_url, gap)
                    await self._subscribe(ws)
            elif kind == "delta" and not self._awaiting_reply:
                self._emit("delta", frame)
            elif kind == "session":
                self._take_session(frame.get("session"), emit=True)
            elif kind == "error":
                if frame.get("code") == "too_slow":
                    await self._subscribe(ws)  # the hub dropped us; carry on from our last seq
                else:
                    log.warning("stream %s: hub error %s: %s", self.ws_url, frame.get("code"), frame.get("message"))

    def _take_event(self, data: dict[str, Any], *, allow_gap: bool) -> None:
        if self._transcript.add(data, allow_gap=allow_gap) is not None:
            self._emit("event", data)

    def _take_session(self, session: Any, *, emit: bool) -> None:
        if isinstance(session, dict):
            self._on_session(session)
            if emit:
                self._emit("session", session)

    async def _ping(self, ws: ClientConnection) -> None:
        """Ask the hub itself (not just the socket) for a pong now and then; a hub silent for
        two intervals is taken as gone, and the connection is closed to reconnect."""
        self._last_frame_at = time.monotonic()
        try:
            while True:
                await asyncio.sleep(self.ping_interval_s)
                if time.monotonic() - self._last_frame_at > 2 * self.ping_interval_s:
                    log.info("stream %s: no answer to pings; reconnecting", self.ws_url)
                    await ws.close()
                    return
                await ws.send(dumps({"type": "ping"}))
        except WebSocketException:
            return  # the reader sees the connection end and reconnects


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
