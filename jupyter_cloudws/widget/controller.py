"""The chat's controller: every synced trait and all the logic of one chat, without a transport.

Two transports show it: :class:`~.chat.ChatWidget` (an anywidget in a kernel: traits sync over the
widget's comm) and :class:`~jupyter_cloudws.panel.channel.PanelChat` (inside the jupyter server,
one per open JupyterLab panel: traits and messages become WebSocket frames). A transport gives
three things: :meth:`ChatController._emit` carries a custom message to the front end,
:meth:`ChatController._batch` groups trait writes into one update, and
:meth:`ChatController._close_transport` ends it; front-end messages come in through
:meth:`ChatController.handle_message`.

The transcript is state (``transcript``), so a reloaded page or a second view gets the whole
history. It is updated in place, without a trait change, and each change is sent to the front
end as an ``upsert`` message: one event costs one small message, never a resend of the whole
transcript.

Three threads touch the controller: the front end's (the kernel's, or the panel's worker), the
client's stream thread (events, deltas, and the throttled re-render, scheduled on that thread's
loop) and the review's workers (``_review``: the changes, diffs and pull request, and the
new-session form's GitHub repositories and branches, fetched off both other threads: a request
made on the stream thread would stall every session's stream, and one made on the front end's
would hold the chat's other messages behind it). ipywidgets is not thread-safe: a trait write
sends a sync message and goes through ``hold_sync`` and the property lock, which are per-widget
state. So every trait write and every message, from any thread, happens under one lock,
``self._lock``; the widget's ipywidgets entry points that send or read state take it too.

Why a lock rather than handing everything to the kernel's thread (its io loop's
``add_callback``): that thread is busy for as long as a cell runs, and a cell that calls
``session.wait()`` would freeze the chat until the prompt has ended -- the one moment a live view
matters. Under the lock the stream thread keeps the chat current while a cell blocks. Nothing
slow runs under it: requests to the hub are made before taking it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import traitlets

from .repos import NOT_CONFIGURED_HINT, branch_choices, error_words, repo_choices
from .review import changes_summary, file_view, find_file, pr_draft, pull_request_badge
from .transcript import Item, Transcript

if TYPE_CHECKING:
    from ..client import Client, Session

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
PR_POLL_INTERVAL_S = 60.0  # how often a displayed chat asks for its open pull request's state
REVIEW_WORKERS = 2  # a slow pull request request does not hold up a diff


class ChatController(traitlets.HasTraits):
    """One chat: its synced traits (tagged ``sync=True``) and what front-end messages do."""

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
    # The review: the header's pull request badge ({number, state, title, url}, {} for none), the
    # session's "N files changed" ({state: loading|ready|error, files_total, additions, deletions,
    # files, truncated, error}) and the pull request form ({state: loading|ready|sending|error,
    # title, body, draft, error}).
    pull_request = traitlets.Dict().tag(sync=True)
    changes_total = traitlets.Dict().tag(sync=True)
    pr_form = traitlets.Dict().tag(sync=True)
    pr_poll_interval_s = traitlets.Float(
        PR_POLL_INTERVAL_S, help="While the chat is displayed and its pull request is open or a draft, its front end "
        "asks this often (seconds) for the pull request's state: the server then refreshes it from the git host.",
    ).tag(sync=True)  # fmt: skip

    def __init__(
        self, client: Client, session: Session | None = None, *, review_executor: Executor | None = None, **kwargs: Any
    ) -> None:
        self._lock = threading.RLock()  # before anything can send: see the module docstring
        super().__init__(**kwargs)
        self._review = review_executor or ThreadPoolExecutor(REVIEW_WORKERS, thread_name_prefix="cloudws-review")
        self._reset_review()
        self.client = client
        self._session: Session | None = None
        self._opened = 0  # how many times a session was opened: tells each subscription's callbacks apart
        self._unsubscribe: Any = None
        self._transcript = Transcript()
        self._last_render_s = 0.0
        self._render_scheduled = False
        self._closed = False
        self._last_typing_s = 0.0
        self._warmed: dict[tuple[str, str], float] = {}  # (repo, base branch) -> when the form warmed it
        self.isolation = _isolation(client)
        if session is not None:
            self.open_session(session)
        else:
            self.show_sessions()

    # -- which session -----------------------------------------------------------------------

    @property
    def current(self) -> Session | None:
        return self._session

    # -- the transport: overridden by each front end's carrier --------------------------------

    def _emit(self, content: dict[str, Any]) -> None:
        """Carry one custom message to the front end; called under ``self._lock``."""
        raise NotImplementedError

    @contextmanager
    def _batch(self) -> Iterator[None]:
        """Trait writes inside reach the front end as one update (ipywidgets' ``hold_sync``)."""
        yield

    def _close_transport(self) -> None:
        """End the transport; called once, under ``self._lock``, from :meth:`close`."""

    def open_session(self, session: Session) -> None:
        with self._lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
            self._session = session
            self._transcript = Transcript()
            self._reset_review()
            with self._batch():
                self.transcript = []
                self.session = _session_dict(session)
                self.error = ""
                self.pull_request = {}
                self.changes_total = {"state": "loading"}
                self.pr_form = {}
                self._sync_status()
            self._show("chat")
            self._refresh_changes()  # a session without commits has no git event to ask for it
            # Replays every event so far, then streams: the transcript fills in from callbacks.
            # Each opening is told apart, not each session: opening the session already shown
            # gives the same Session object, and a late frame of its previous subscription must
            # not reach the new transcript (its seq would make the replay's events look seen).
            self._opened += 1
            opened = self._opened
            self._unsubscribe = session.subscribe(lambda kind, payload: self._on_stream(opened, kind, payload))

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
        with self._lock, self._batch():
            for name, value in traits.items():
                setattr(self, name, value)

    def _show(self, view: str) -> None:
        with self._lock:
            self.view = view
            self._emit({"type": "view", "view": view})

    def close(self) -> None:
        with self._lock:
            self._closed = True  # a re-render still scheduled does nothing
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            self._close_transport()
        self._review.shutdown(wait=False, cancel_futures=True)

    # -- the stream (client thread) ----------------------------------------------------------

    def _on_stream(self, opened: int, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            if opened != self._opened:
                return  # a callback of a session shown before (another, or this one before it was reopened)
            if kind == "event":
                self._push(self._transcript.apply(payload))
                self._sync_status()
                if payload.get("type") == "git" and (payload.get("committed") or payload.get("files")):
                    self._session_changes = None  # the branch moved: the cached diffs are stale
                    self._refresh_changes()
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
            # The trait's list is updated in place: the state stays whole for a reload,
            # and only the changed items travel.
            self.transcript.clear()
            self.transcript.extend(self._transcript.items)
            self._emit({"type": "upsert", "items": items})

    def _sync_status(self) -> None:
        t = self._transcript
        with self._lock, self._batch():
            self.working = t.working
            self.running_message_id = t.running_message_id
            self.sandbox_status = (
                t.sandbox_status if t.last_seq else (self.session or {}).get("sandbox_status", "stopped")
            )
            self.sandbox_detail = t.sandbox_detail
            if t.pull_request is not None and t.pull_request != self.pull_request:
                self.pull_request = t.pull_request

    # -- the front end (kernel thread, or the panel's worker) ----------------------------------

    def handle_message(self, content: dict[str, Any]) -> None:
        """One message from the front end (what chat.js passes to ``model.send``)."""
        kind = content.get("type")
        if kind == "warm_repo":  # a hint, before the error is cleared: it never shows one
            self._warm_repo(str(content.get("repo") or "").strip(), str(content.get("base_branch") or "").strip())
            return
        if kind in ("github_repos", "github_branches"):  # the form's lists: an answer or its error goes to the form
            self._submit(self._load_github_repos if kind == "github_repos" else self._load_github_branches, content)
            return
        if kind in ("diff", "pr_poll"):  # asked by the view itself, not a user's action: an error stays shown
            if self._session is not None:
                self._on_review_message(kind, content)
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
            elif kind in REVIEW_MESSAGES:
                self._on_review_message(kind, content)
            elif kind == "archive":
                self._require_session().archive()
                with self._lock:
                    if self._unsubscribe is not None:
                        self._unsubscribe()
                        self._unsubscribe = None
                    self._session = None
                    self._opened += 1  # its late callbacks change nothing any more
                    self.session = {}
                    self.pull_request = {}
                    self.changes_total = {}
                self.show_sessions()
        except Exception as exc:
            self._set(error=str(exc))

    # -- the review (front end's thread asks, review workers fetch) ---------------------------------

    def _reset_review(self) -> None:
        with self._lock:
            self._prompt_changes: dict[str, Any] = {}  # prompt id -> its changes (a commit never moves)
            self._session_changes: Any = None  # the last session.changes(), diffs included
            self._changes_running = False
            self._changes_again = False
            self._polling = False
            self._last_poll_s = float("-inf")

    def _submit(self, job: Any, *args: Any) -> None:
        try:
            self._review.submit(job, *args)
        except RuntimeError:  # the widget was closed: nobody is left to show the answer
            pass

    def _on_review_message(self, kind: str, content: dict[str, Any]) -> None:
        session = self._require_session()
        if kind == "diff":
            self._submit(self._load_diff, session, str(content.get("scope") or ""), str(content.get("path") or ""))
        elif kind == "pr_poll":
            now = time.monotonic()
            with self._lock:  # every view polls: the hub is asked at most about once an interval
                if self._polling or now - self._last_poll_s < self.pr_poll_interval_s / 2:
                    return
                self._polling, self._last_poll_s = True, now
            self._submit(self._poll_pull_request, session)
        elif kind == "pr_draft":
            self._set(pr_form={"state": "loading"})
            self._submit(self._load_pr_draft, session)
        elif kind == "pr_create":
            form = {"title": str(content.get("title") or "").strip(), "body": str(content.get("body") or ""),
                    "draft": bool(content.get("draft"))}  # fmt: skip
            if not form["title"]:  # refused here, with the text kept: the server would say the same
                self._set(pr_form={**form, "state": "error", "error": "A pull request needs a title."})
                return
            self._set(pr_form={**form, "state": "sending"})
            self._submit(self._create_pull_request, session, form)

    def _refresh_changes(self) -> None:
        """Ask for the session's totals again; asks made while one runs make one more run after it."""
        with self._lock:
            if self._changes_running:
                self._changes_again = True
                return
            self._changes_running = True
            session = self._session
        if session is not None:
            self._submit(self._load_changes, session)

    def _load_changes(self, session: Session) -> None:
        while True:
            with self._lock:
                self._changes_again = False
            try:
                changes = session.changes()
                view = {"state": "ready", **changes_summary(changes)}
            except Exception as exc:
                changes, view = None, {"state": "error", "error": str(exc)}
            with self._lock:
                if session is self._session:
                    self._session_changes = changes
                    self._set(changes_total=view)
                if not self._changes_again or session is not self._session:
                    self._changes_running = False
                    return

    def _load_diff(self, session: Session, scope: str, path: str) -> None:
        """One file's diff for the front end: ``scope`` is a prompt's id, or "" for the session."""
        reply: dict[str, Any] = {"type": "diff", "scope": scope, "path": path}
        try:
            with self._lock:
                changes = self._prompt_changes.get(scope) if scope else self._session_changes
            if changes is None:
                changes = session.changes(prompt=scope) if scope else session.changes()
                with self._lock:
                    if scope:
                        self._prompt_changes[scope] = changes
                    elif session is self._session:
                        self._session_changes = changes
            found = find_file(changes, path)
            if found is None:
                raise LookupError(f"{path} is not among the changes")
            reply["file"] = file_view(found)
        except Exception as exc:
            reply["error"] = str(exc)
        with self._lock:
            if session is self._session and not self._closed:
                self._emit(reply)

    def _poll_pull_request(self, session: Session) -> None:
        """The server refreshes its pull requests from the git host and appends a ``pull_request``
        event when one changed: the badge follows from that event, like every other view's."""
        try:
            session.artifacts()
        except Exception:  # the next tick asks again; a lasting failure shows on Pull request
            pass
        finally:
            with self._lock:
                self._polling = False

    def _load_pr_draft(self, session: Session) -> None:
        try:
            form = {**pr_draft(session.pull_request_draft()), "draft": False, "state": "ready"}
        except Exception as exc:
            form = {"title": "", "body": "", "draft": False, "state": "error", "error": f"No draft: {exc}"}
        with self._lock:
            if session is self._session and self.pr_form.get("state") == "loading":
                self._set(pr_form=form)

    def _create_pull_request(self, session: Session, form: dict[str, Any]) -> None:
        try:
            pr = session.create_pull_request(title=form["title"], body=form["body"], draft=form["draft"])
        except Exception as exc:  # the form stays, with what was typed, to try again
            with self._lock:
                if session is self._session:
                    self._set(pr_form={**form, "state": "error", "error": str(exc)})
            return
        badge = pull_request_badge(pr)
        with self._lock:
            if session is not self._session:
                return
            self._set(pr_form={}, **({"pull_request": badge} if badge else {}))
            self._show("chat")

    # -- the new-session form's GitHub lists (front end's thread asks, review workers fetch) ---

    def _reply(self, reply: dict[str, Any]) -> None:
        with self._lock:
            if not self._closed:
                self._emit(reply)

    def _load_github_repos(self, content: dict[str, Any]) -> None:
        """The user's repositories for the form, matching ``q``; ``seq`` goes back as it came, so
        that the view keeps only the answer to what was typed last."""
        q = str(content.get("q") or "").strip()
        reply: dict[str, Any] = {"type": "github_repos", "seq": content.get("seq"), "q": q}
        github_repos = getattr(self.client, "github_repos", None)
        try:
            # An older client has no such call: the form is then as it was without a token.
            answer = repo_choices(github_repos(q or None) if github_repos is not None else None)
        except Exception as exc:
            reply.update(
                configured=True, repos=[], error=f"Could not list your GitHub repositories: {error_words(exc)}"
            )
        else:
            reply.update(answer, hint="" if answer["configured"] else NOT_CONFIGURED_HINT)
        self._reply(reply)

    def _load_github_branches(self, content: dict[str, Any]) -> None:
        full_name = str(content.get("full_name") or "")
        reply: dict[str, Any] = {"type": "github_branches", "seq": content.get("seq"), "full_name": full_name}
        try:
            reply.update(branch_choices(self.client.github_branches(full_name)))
        except Exception as exc:
            reply.update(default_branch="", branches=[],
                         error=f"Could not list the branches of {full_name}: {error_words(exc)}")  # fmt: skip
        self._reply(reply)

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


REVIEW_MESSAGES = frozenset({"diff", "pr_poll", "pr_draft", "pr_create"})


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
