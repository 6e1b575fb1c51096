"""``GET {base_url}cloudws/api/panel``: the WebSocket of one open JupyterLab panel.

Authenticated and authorized like the session WebSocket (``read`` on ``cloudws`` to connect);
each message that changes something asks the authorizer for ``write`` again, as that socket's
prompts do, and a refusal is an ``error`` frame. Frames are parsed here, on the IOLoop (cheap,
and a bad one is answered at once); the messages themselves go to the panel's worker thread
(``channel.py``), whose frames come back through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import functools
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

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)):
            raise web.HTTPError(403)
        self._loop = asyncio.get_running_loop()
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open()  # WebSocketMixin's keep-alive pings
        credentials = browser_credentials(self.request.headers, self.get_query_argument("token", None))
        serverapp = self.serverapp
        self.channel = PanelChannel(functools.partial(loopback_client, serverapp, credentials), self._write_soon)

    def _write_soon(self, text: str) -> None:
        """From any thread: write ``text`` on the IOLoop thread, in the order given."""
        try:
            self._loop.call_soon_threadsafe(self._write, text)
        except RuntimeError:  # the server's loop has stopped: nobody is left to read it
            pass

    def _write(self, text: str) -> None:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        try:
            self.write_message(text)
        except websocket.WebSocketClosedError:
            pass

    def _refuse(self, code: str, message: str) -> None:
        self._write(protocol.dumps(protocol.error_frame(code, message)))

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
        if self.channel is not None:
            self.channel.submit(content)

    def on_close(self) -> None:
        if self.channel is not None:
            self.channel.close()
