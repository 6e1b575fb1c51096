"""``GET {base_url}cloudws/api/panel``: the WebSocket of one open JupyterLab panel.

Authenticated and authorized like the session WebSocket (``read`` on ``cloudws`` to connect);
each message that changes something asks the authorizer for ``write`` again, as that socket's
prompts do, and a refusal is an ``error`` frame. Frames are parsed here, on the IOLoop (cheap,
and a bad one is answered at once); the messages themselves go to the panel's worker thread
(``channel.py``), whose frames come back through ``call_soon_threadsafe``.

Frames for the browser wait in an outbox written one at a time. When the frames waiting pass
``websocket_outbox_max_bytes``, the thread making the next one waits until the browser has
read enough: the server's memory stays bounded whatever the browser does, and a slow browser
still gets every frame, in order (the panel's own session stream then stops reading too, and
the session socket drops it with 4008; it resumes after its last seq, as any client does). A
browser that never reads again is closed by the keep-alive pings, which ends the wait.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import ensure_async
from tornado import web, websocket

from ..handlers import AUTH_RESOURCE, CloudwsMixin
from . import protocol
from .channel import PanelChannel
from .loopback import browser_credentials, loopback_client


class PanelSocketHandler(WebSocketMixin, CloudwsMixin, JupyterHandler, websocket.WebSocketHandler):
    """One panel: its controller lives as long as this socket."""

    channel: PanelChannel | None = None
    # While waiting for room, a thread holds the controller's lock: every other thread of this
    # panel waits with it, and nothing else. Re-checked this often in case the loop has stopped.
    _ROOM_POLL_S = 1.0

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)):
            raise web.HTTPError(403)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._room = threading.Condition()  # guards the two below; notified as frames leave
        self._outbox_bytes = 0  # UTF-8 size of the frames queued and not yet written
        self._gone = False  # the socket closed: nobody waits for room any more
        self._writer: asyncio.Task[None] | None = None
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open()  # WebSocketMixin's keep-alive pings
        self._writer = self._loop.create_task(self._write_frames())
        credentials = browser_credentials(self.request.headers, self.get_query_argument("token", None))
        serverapp = self.serverapp
        self.channel = PanelChannel(functools.partial(loopback_client, serverapp, credentials), self._write_soon)

    def _write_soon(self, text: str) -> None:
        """From any thread: queue ``text`` for the browser, in the order given. Off the IOLoop
        thread, first wait while the outbox is full (a frame alone always fits: a hello with a
        long transcript may be larger than the limit)."""
        size_bytes = len(text.encode("utf-8", "surrogatepass"))
        max_bytes = self.hub.settings.websocket_outbox_max_bytes
        on_loop = threading.get_ident() == self._loop_thread  # waiting there would wait for ever
        with self._room:
            while not on_loop and not self._gone and self._outbox_bytes and self._outbox_bytes + size_bytes > max_bytes:
                if not self._room.wait(self._ROOM_POLL_S) and self._loop.is_closed():
                    return
            if self._gone:
                return
            self._outbox_bytes += size_bytes
        try:
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, text)
        except RuntimeError:  # the server's loop has stopped: nobody is left to read it
            pass

    async def _write_frames(self) -> None:
        while (text := await self._outbox.get()) is not None:
            try:
                await self.write_message(text)
            except websocket.WebSocketClosedError:
                return
            finally:
                with self._room:
                    self._outbox_bytes -= len(text.encode("utf-8", "surrogatepass"))
                    self._room.notify_all()

    def _refuse(self, code: str, message: str) -> None:
        self._write_soon(protocol.dumps(protocol.error_frame(code, message)))

    async def on_message(self, message: str | bytes) -> None:
        try:
            content = protocol.parse_browser_frame(message)
        except protocol.BadFrame as exc:
            self._refuse(exc.code, exc.message)
            return
        # Asked again for every action: the authorizer may have taken the right away.
        if protocol.needs_write(content) and not await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "write", AUTH_RESOURCE)
        ):
            self._refuse("forbidden", f"not allowed to write cloudws: {content['type']!r} changes sessions")
            return
        if self.channel is not None and not self.channel.submit(content):
            self._refuse("busy", f"the panel is still handling earlier messages: {content['type']!r} was not done, "
                         "send it again")  # fmt: skip

    def on_close(self) -> None:
        with self._room:
            self._gone = True
            self._room.notify_all()  # a thread waiting for room gives up
        if self.channel is not None:
            self.channel.close()
        self._outbox.put_nowait(None)  # the writer ends
