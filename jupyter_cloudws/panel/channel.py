"""One open JupyterLab panel: a :class:`PanelChat` controller and the threads that drive it.

The controller is the notebook widget's (``widget/controller.py``), run inside the server: its
trait changes become ``state`` frames, its messages ``msg`` frames (``protocol.py``). Its
client talks to this same server over loopback, with synchronous requests: those must never run
on the server's IOLoop thread, which would then wait on itself. So every front-end message is
handled on the panel's own single worker thread, one after another in arrival order, and every
frame is handed to the IOLoop thread to be written (``write_frame`` must be thread-safe).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from .. import __version__
from ..widget.controller import ChatController
from ..widget.markdown import PYGMENTS_CSS
from . import protocol

log = logging.getLogger("jupyter_cloudws.panel")

WriteFrame = Callable[[str], None]  # takes one serialized frame, from any thread
# Upserts of one burst travel as one frame: a session opened with thousands of events replays
# them one callback each, and a frame per event would cost the browser a parse and a draw each.
UPSERT_FLUSH_S = 0.03  # how long an upsert may wait for others of its burst
UPSERT_MAX_WAIT_S = 0.1  # and at most this long while a burst goes on (text streaming stays live)
UPSERT_MAX_ITEMS = 2000  # a frame of merged upserts carries at most this many items
# Browser messages waiting for the worker (busy with a slow request): past this many, the next
# is refused with a ``busy`` error. chat.js sends a few a second at most (typing is throttled).
MAX_QUEUED_MESSAGES = 64


class PanelChat(ChatController):
    """The chat controller with WebSocket frames as its transport.

    Until :meth:`hello` the front end has nothing: changes made while the controller starts are
    not sent one by one, the hello carries the state they led to. After it, each trait change
    (one ``state`` frame per batch) and each message is serialized under the controller's lock,
    so a list updated in place later (the transcript) is sent as it was. Upserts are the
    exception: those of one burst are merged into one frame (see ``UPSERT_FLUSH_S``), and trait
    changes made meanwhile follow them, except a reset transcript, which flushes them first.
    """

    def __init__(self, client: Any, write_frame: WriteFrame, **kwargs: Any) -> None:
        self._write_frame = write_frame
        self._live = False
        self._batch_depth = 0
        self._pending: dict[str, Any] = {}
        # Upserted items not sent yet, by id (a later version replaces an earlier one and keeps
        # its place: the front end places a new item where its id first came), and since when.
        self._upserts: dict[str, Any] = {}
        self._held_state: dict[str, Any] = {}  # trait changes made while upserts wait: sent after them
        self._upserts_since_s = 0.0
        self._flush_scheduled = False
        super().__init__(client, **kwargs)
        self.observe(self._on_trait_change, names=list(self.trait_names(sync=True)))

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {name: getattr(self, name) for name in self.trait_names(sync=True)}

    def hello(self) -> None:
        """Send the hello frame (the whole state) and from then on every change."""
        with self._lock:
            self._write_frame(protocol.dumps(protocol.hello_frame(__version__, self.state(), PYGMENTS_CSS)))
            self._live = True

    # -- the transport ------------------------------------------------------------------------

    def _emit(self, content: dict[str, Any]) -> None:
        with self._lock:
            if not self._live:
                return
            if content.get("type") == "upsert":
                self._queue_upserts(content["items"])
                return
            self._flush_upserts()  # every frame goes out in the order it was made
            self._write_frame(protocol.dumps(protocol.msg_frame(content)))

    def _queue_upserts(self, items: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        if not self._upserts:
            self._upserts_since_s = now
        for item in items:
            self._upserts[item["id"]] = item
        if len(self._upserts) >= UPSERT_MAX_ITEMS or now - self._upserts_since_s >= UPSERT_MAX_WAIT_S:
            self._flush_upserts()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            try:
                # On the client's stream loop, where the events come from: a replay's callbacks
                # run back to back, and the timer fires only once the loop has drained them.
                self.client._loop.call_later(UPSERT_FLUSH_S, self._flush_scheduled_upserts)
            except RuntimeError:  # the client is closed: nothing more will come, send now
                self._flush_scheduled = False
                self._flush_upserts()

    def _flush_scheduled_upserts(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            self._flush_upserts()

    def _flush_upserts(self) -> None:
        if not self._upserts:
            return
        items, self._upserts = list(self._upserts.values()), {}
        held, self._held_state = self._held_state, {}
        if self._live:
            self._write_frame(protocol.dumps(protocol.msg_frame({"type": "upsert", "items": items})))
            if held:
                self._write_frame(protocol.dumps(protocol.state_frame(held)))

    @contextmanager
    def _batch(self) -> Iterator[None]:
        with self._lock:
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1
                if not self._batch_depth and self._pending:
                    changes, self._pending = self._pending, {}
                    self._send_state(changes)

    def _on_trait_change(self, change: dict[str, Any]) -> None:
        with self._lock:
            if self._batch_depth:
                self._pending[change["name"]] = change["new"]
            else:
                self._send_state({change["name"]: change["new"]})

    def _send_state(self, changes: dict[str, Any]) -> None:
        if not self._live:
            return
        if self._upserts and "transcript" not in changes:
            # Status that follows the items (working, the sandbox's state) waits with them, so a
            # replay's prompts do not split its burst; it reaches the browser right after them.
            self._held_state.update(changes)
            return
        self._flush_upserts()  # a reset transcript never overtakes the items made before it
        self._write_frame(protocol.dumps(protocol.state_frame(changes)))

    def _close_transport(self) -> None:
        self._live = False
        self._upserts, self._held_state = {}, {}


class PanelChannel:
    """A panel's controller, its client and its worker thread, from the socket's open to its close.

    ``make_client`` builds the loopback client (on the worker: it may be slow); ``write_frame``
    takes serialized frames from any thread. :meth:`submit` and :meth:`close` are called on the
    IOLoop thread and never block.
    """

    def __init__(self, make_client: Callable[[], Any], write_frame: WriteFrame) -> None:
        self._make_client = make_client
        self._write_frame = write_frame
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="cloudws-panel")
        self._closing = threading.Event()
        self._queued_lock = threading.Lock()
        self._queued = 0  # messages submitted and not handled yet
        self.client: Any = None
        self.chat: PanelChat | None = None
        self._worker.submit(self._start)

    def submit(self, content: dict[str, Any]) -> bool:
        """Handle one front-end message on the worker, after every message before it. False
        (nothing done) when MAX_QUEUED_MESSAGES wait already: the caller says the panel is busy."""
        if self._closing.is_set():
            return True
        with self._queued_lock:
            if self._queued >= MAX_QUEUED_MESSAGES:
                return False
            self._queued += 1
        self._worker.submit(self._handle_queued, content)
        return True

    def close(self) -> None:
        """End the controller, its client and the worker; messages still queued are dropped."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._worker.submit(self._stop)
        self._worker.shutdown(wait=False)

    # -- on the worker thread -----------------------------------------------------------------

    def _start(self) -> None:
        if self._closing.is_set():
            return
        try:
            self.client = self._make_client()
            self.chat = PanelChat(self.client, self._write_frame)
            self.chat.hello()
        except Exception as exc:  # the browser sees why its panel is empty; the socket stays
            log.warning("cloudws panel: could not start the chat: %s", exc, exc_info=True)
            self._write_frame(protocol.dumps(protocol.error_frame("unavailable", f"the chat could not start: {exc}")))

    def _handle_queued(self, content: dict[str, Any]) -> None:
        try:
            self._handle(content)
        finally:
            with self._queued_lock:
                self._queued -= 1

    def _handle(self, content: dict[str, Any]) -> None:
        if self._closing.is_set():
            return
        if self.chat is None:
            self._write_frame(protocol.dumps(protocol.error_frame("unavailable", "the chat did not start")))
            return
        try:
            self.chat.handle_message(content)
        except Exception as exc:  # handle_message shows expected errors itself; this is a bug
            log.error("cloudws panel: message %r failed", content.get("type"), exc_info=True)
            self._write_frame(protocol.dumps(protocol.error_frame("internal", f"the message failed: {exc}")))

    def _stop(self) -> None:
        try:
            if self.chat is not None:
                self.chat.close()  # its stream subscription and review workers
        finally:
            if self.client is not None:
                self.client.close()  # its stream thread and HTTP connections
