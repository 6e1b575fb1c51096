"""The chat widget's Python side: a live view of one session, and a picker to switch sessions.

The transcript is widget state (``transcript``), so a reloaded page or a second view gets the
whole history from the kernel. It is updated in place, without a trait sync, and each change is
sent to the front end as an ``upsert`` message: one event costs one small message, never a
resend of the whole transcript.

Three threads touch the widget: the kernel's (front-end messages, displays), the client's
stream thread (events, deltas, and the throttled re-render, scheduled on that thread's loop) and
nothing else. ipywidgets is not thread-safe: a trait write sends a sync message and goes through
``hold_sync`` and the property lock, which are per-widget state. So every trait write and every
message, from either thread, happens under one lock, ``self._lock``; the ipywidgets entry points
that send or read state (``send``, ``send_state``, ``set_state``, ``get_state``) take it too.

Why a lock rather than handing everything to the kernel's thread (its io loop's
``add_callback``): that thread is busy for as long as a cell runs, and a cell that calls
``session.wait()`` would freeze the chat until the prompt has ended -- the one moment a live view
matters. Under the lock the stream thread keeps the chat current while a cell blocks. Nothing
slow runs under it: requests to the hub are made before taking it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from .markdown import PYGMENTS_CSS
from .transcript import Item, Transcript

if TYPE_CHECKING:
    from ..client import Client, Session

HERE = Path(__file__).parent
# Aliases Claude Code resolves to the current model of each family ('' keeps its default).
MODELS = [
    {"id": "", "label": "Default"},
    {"id": "sonnet", "label": "Sonnet"},
    {"id": "opus", "label": "Opus"},
    {"id": "haiku", "label": "Haiku"},
]
STREAM_RENDER_INTERVAL_S = 0.08  # how often a growing block of text is rendered again
TYPING_INTERVAL_S = 5.0  # at most one warm-up hint per this many seconds
WARM_INTERVAL_S = 30.0  # a repository chosen in the new-session form is warmed at most this often


class ChatWidget(anywidget.AnyWidget):
    _esm = HERE / "chat.js"
    _css = (HERE / "chat.css").read_text() + "\n" + PYGMENTS_CSS

    session = traitlets.Dict().tag(sync=True)
    transcript = traitlets.List().tag(sync=True)
    working = traitlets.Bool(False).tag(sync=True)
    running_message_id = traitlets.Unicode(allow_none=True, default_value=None).tag(sync=True)
    sandbox_status = traitlets.Unicode("stopped").tag(sync=True)
    sandbox_detail = traitlets.Unicode("").tag(sync=True)
    isolation = traitlets.Unicode("").tag(sync=True)  # how the server isolates sandboxes (GET status)
    connection = traitlets.Dict({"state": "idle"}).tag(sync=True)
    sessions = traitlets.List().tag(sync=True)
    recent_repos = traitlets.List().tag(sync=True)
    models = traitlets.List(MODELS).tag(sync=True)
    view = traitlets.Unicode("chat").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)

    def __init__(self, client: Client, session: Session | None = None, **kwargs: Any) -> None:
        self._lock = threading.RLock()  # before anything can send: see the module docstring
        super().__init__(**kwargs)
        self.client = client
        self._session: Session | None = None
        self._unsubscribe: Any = None
        self._transcript = Transcript()
        self._last_render_s = 0.0
        self._render_scheduled = False
        self._closed = False
        self._last_typing_s = 0.0
        self._warmed: dict[tuple[str, str], float] = {}  # (repo, base branch) -> when the form warmed it
        self.on_msg(self._on_front_end_message)
        self.isolation = _isolation(client)
        if session is not None:
            self.open_session(session)
        else:
            self.show_sessions()

    # -- which session -----------------------------------------------------------------------

    @property
    def current(self) -> Session | None:
        return self._session

    # -- ipywidgets' entry points, under the lock -------------------------------------------------

    def send(self, content: Any, buffers: Any = None) -> None:
        with self._lock:
            super().send(content, buffers)

    def send_state(self, key: Any = None) -> None:
        with self._lock:
            super().send_state(key)

    def set_state(self, sync_data: Any) -> None:
        with self._lock:
            super().set_state(sync_data)

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        with self._lock:  # a new view or a reload must not see the transcript mid-update
            return super().get_state(key, drop_defaults)

    def open_session(self, session: Session) -> None:
        with self._lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
            self._session = session
            self._transcript = Transcript()
            with self.hold_sync():
                self.transcript = []
                self.session = _session_dict(session)
                self.error = ""
                self._sync_status()
            self._show("chat")
            # Replays every event so far, then streams: the transcript fills in from callbacks.
            self._unsubscribe = session.subscribe(lambda kind, payload: self._on_stream(session, kind, payload))

    def show_sessions(self, q: str | None = None, *, switch: bool = True) -> None:
        """Refresh the picker's list; with ``switch``, also show it when no session is open."""
        try:
            listed = [_session_dict(s) for s in self.client.sessions(q=q or None)]
            recent = self.client.recent_repos()
        except Exception as exc:  # shown in the widget: a traceback in a callback goes nowhere
            self._set(error=str(exc))
        else:
            self._set(sessions=listed, recent_repos=recent)
        with self._lock:
            if switch and self._session is None:
                self._show("sessions")

    def _set(self, **traits: Any) -> None:
        with self._lock, self.hold_sync():
            for name, value in traits.items():
                setattr(self, name, value)

    def _show(self, view: str) -> None:
        with self._lock:
            self.view = view
            self.send({"type": "view", "view": view})

    def close(self) -> None:
        with self._lock:
            self._closed = True  # a re-render still scheduled does nothing
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            super().close()

    # -- the stream (client thread) ----------------------------------------------------------

    def _on_stream(self, source: Session, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            if source is not self._session:
                return  # a callback of the session shown before a switch, come too late
            if kind == "event":
                self._push(self._transcript.apply(payload))
                self._sync_status()
            elif kind == "delta":
                self._push(self._transcript.apply_delta(payload["message_id"], int(payload.get("index") or 0),
                                                        payload.get("text") or ""))  # fmt: skip
                self._render_streaming_soon()
            elif kind == "session":
                self.session = payload
            elif kind == "connection":
                self.connection = payload

    def _render_streaming_soon(self) -> None:
        now = time.monotonic()
        if now - self._last_render_s >= STREAM_RENDER_INTERVAL_S:
            self._render_streaming()
        elif not self._render_scheduled:
            # On the stream thread's loop, not a timer thread of its own: one thread fewer that
            # writes to the widget, and the render runs in order with the stream's callbacks.
            self._render_scheduled = True
            try:
                self.client._loop.call_later(STREAM_RENDER_INTERVAL_S - (now - self._last_render_s),
                                             self._render_streaming)  # fmt: skip
            except RuntimeError:  # the client is closed: the final text comes with its event
                self._render_scheduled = False

    def _render_streaming(self) -> None:
        with self._lock:
            self._render_scheduled = False
            if self._closed:
                return
            self._last_render_s = time.monotonic()
            self._push(self._transcript.render_streaming())

    def _push(self, items: list[Item]) -> None:
        if not items:
            return
        with self._lock:
            # The trait's list is updated in place: the kernel's state stays whole for a reload,
            # and only the changed items travel.
            self.transcript.clear()
            self.transcript.extend(self._transcript.items)
            self.send({"type": "upsert", "items": items})

    def _sync_status(self) -> None:
        t = self._transcript
        with self._lock, self.hold_sync():
            self.working = t.working
            self.running_message_id = t.running_message_id
            self.sandbox_status = t.sandbox_status if t.last_seq else (self.session or {}).get(
                "sandbox_status", "stopped"
            )
            self.sandbox_detail = t.sandbox_detail

    # -- the front end (kernel thread) -------------------------------------------------------

    def _on_front_end_message(self, _: Any, content: dict[str, Any], buffers: list[bytes]) -> None:
        kind = content.get("type")
        if kind == "warm_repo":  # a hint, before the error is cleared: it never shows one
            self._warm_repo(str(content.get("repo") or "").strip(), str(content.get("base_branch") or "").strip())
            return
        try:
            self._set(error="")
            if kind == "send":
                self._require_session().prompt(str(content.get("text") or ""), model=content.get("model") or None)
            elif kind == "stop":
                self._require_session().stop()
            elif kind == "typing":
                self._typing()
            elif kind == "list_sessions":
                self.show_sessions(content.get("q"), switch=False)  # the user chose the view
            elif kind == "open_session":
                self.open_session(self.client.session(str(content.get("id"))))
            elif kind == "new_session":
                self.open_session(self.client.new_session(
                    str(content.get("repo") or "").strip(), base_branch=content.get("base_branch") or None,
                    title=content.get("title") or None, model=content.get("model") or None,
                ))  # fmt: skip
            elif kind == "rename":
                session = self._require_session()
                session.rename(str(content.get("title") or ""))
                self._set(session=_session_dict(session))
            elif kind == "archive":
                self._require_session().archive()
                with self._lock:
                    if self._unsubscribe is not None:
                        self._unsubscribe()
                        self._unsubscribe = None
                    self._session = None
                    self.session = {}
                self.show_sessions()
        except Exception as exc:
            self._set(error=str(exc))

    def _require_session(self) -> Session:
        if self._session is None:
            raise RuntimeError("no session is open: pick one or create one")
        return self._session

    def _warm_repo(self, repo: str, base_branch: str) -> None:
        """The new-session form chose a repository: let the server build its image meanwhile.
        Sent once per repository and branch per WARM_INTERVAL_S; a refusal (a half-typed path,
        an older server) is nobody's concern until the form is submitted."""
        now = time.monotonic()
        key = (repo, base_branch)
        if not repo or now - self._warmed.get(key, float("-inf")) < WARM_INTERVAL_S:
            return
        self._warmed[key] = now
        warm = getattr(self.client, "warm", None)
        try:
            if warm is not None:
                warm(repo, base_branch or None)
        except Exception:
            pass

    def _typing(self) -> None:
        now = time.monotonic()
        if self._session is None or now - self._last_typing_s < TYPING_INTERVAL_S:
            return
        self._last_typing_s = now
        warm_up = getattr(self._session, "warm_up", None)
        if warm_up is not None:
            warm_up()


def _session_dict(session: Session) -> dict[str, Any]:
    keys = ("id", "title", "branch", "status", "repo", "model", "base_branch", "sandbox_status", "archived",
            "created_at", "updated_at")  # fmt: skip
    return {k: getattr(session, k, None) for k in keys}


def _isolation(client: Client) -> str:
    """What the sandbox badge says of isolation; empty when the server does not say."""
    try:
        return str(client.status().get("isolation") or "")
    except Exception:  # an older server, or none reachable yet: the badge just omits it
        return ""
