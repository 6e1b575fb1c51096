"""One session as the kernel sees it: its metadata, its transcript, prompts, Stop, subscribers."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .checkout import CheckoutResult, checkout
from .errors import ConnectionLost, PromptFailed
from .events import Event
from .review import Changes, PullRequest
from .stream import SessionStream
from .transcript import Transcript

if TYPE_CHECKING:
    from .api import Client

log = logging.getLogger("jupyter_cloudws.client")

Callback = Callable[[str, dict[str, Any]], None]


class _Subscription:
    def __init__(self, callback: Callback) -> None:
        self.callback = callback
        self.active = True


class Session:
    """A session of the hub. Get one from :meth:`Client.new_session`, :meth:`Client.session` or
    :meth:`Client.sessions`; the Client hands out one object per session id.

    The metadata properties read the latest session dict known: from REST answers and, once the
    live stream runs, from the hub's ``session`` frames. The stream starts on first use of
    ``.events``, ``.prompt()``, ``.wait()`` or ``.subscribe()``.
    """

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self._client = client
        self._id: str = data["id"]
        self._data = data
        self._path = f"/sessions/{quote(self._id, safe='')}"
        self._transcript = Transcript()
        self._stream: SessionStream | None = None
        self._lock = threading.Lock()
        self._subscriptions: list[_Subscription] = []
        self._pending: list[str] = []  # message ids this object sent and no wait() has seen end

    # -- metadata ---------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def title(self) -> str:
        return self._data["title"]

    @property
    def branch(self) -> str:
        return self._data["branch"]

    @property
    def status(self) -> str:
        """``idle`` or ``running``."""
        return self._data["status"]

    @property
    def repo(self) -> str:
        return self._data["repo"]

    @property
    def model(self) -> str | None:
        return self._data.get("model")

    @property
    def base_branch(self) -> str:
        return self._data.get("base_branch") or ""

    @property
    def sandbox_status(self) -> str:
        """``spawning``, ``cloning``, ``ready``, ``stopped`` or ``failed``."""
        return self._data["sandbox_status"]

    @property
    def archived(self) -> bool:
        return bool(self._data.get("archived"))

    @property
    def created_at(self) -> float:
        """Epoch seconds."""
        return float(self._data["created_at"])

    @property
    def updated_at(self) -> float:
        """Epoch seconds."""
        return float(self._data["updated_at"])

    def _update(self, data: dict[str, Any]) -> None:
        """Take a newer session dict; answers can arrive out of order (REST and stream race)."""
        if data.get("id") != self._id:
            return
        with self._lock:
            if float(data.get("updated_at") or 0) >= float(self._data.get("updated_at") or 0):
                self._data = data

    def refresh(self) -> Session:
        self._update(self._client._http.request("GET", self._path))
        return self

    def rename(self, title: str) -> Session:
        return self._patch({"title": title})

    def archive(self) -> Session:
        return self._patch({"archived": True})

    def unarchive(self) -> Session:
        return self._patch({"archived": False})

    def _patch(self, changes: dict[str, Any]) -> Session:
        self._update(self._client._http.request("PATCH", self._path, json=changes))
        return self

    # -- review: changes, pull requests, the branch brought home ---------------------------

    def changes(self, prompt: str | None = None) -> Changes:
        """What the session changed, base branch to session branch; with ``prompt`` (a message
        id) what that one prompt changed. Show it in a cell for the highlighted diffs."""
        params = {"prompt": prompt} if prompt else None
        return Changes.from_json(self._client._http.request("GET", self._path + "/changes", params=params))

    def artifacts(self) -> list[PullRequest | dict[str, Any]]:
        """What the session produced besides its branch: a :class:`PullRequest` for each pull
        request, the hub's dict for kinds this client does not know."""
        answer = self._client._http.request("GET", self._path + "/artifacts")
        return [
            PullRequest.from_json(a) if a.get("kind") == "pull_request" else a
            for a in answer.get("artifacts") or []
            if isinstance(a, dict)
        ]

    def pull_request(self) -> PullRequest | None:
        """The session's pull request, if one was opened (the latest one)."""
        prs = [a for a in self.artifacts() if isinstance(a, PullRequest)]
        return prs[-1] if prs else None

    def pull_request_draft(self) -> dict[str, str]:
        """``{title, body}`` the hub drafts from the prompts and the agent's final summary."""
        return self._client._http.request("GET", self._path + "/pull-request/draft")

    def create_pull_request(self, title: str | None = None, body: str | None = None, draft: bool = False) -> PullRequest:
        """Push the branch and open a pull request against the base branch (the drafted title
        and body unless given). When the branch already has an open or draft one, that one is returned, with
        ``created`` False. The host's refusals raise :class:`CloudwsError` with its message."""
        request: dict[str, Any] = {"draft": bool(draft)}
        if title is not None:
            request["title"] = title
        if body is not None:
            request["body"] = body
        # Not repeated on a transport error: the hub finds the branch's PR if the first one landed,
        # but a blind retry would hide which request did what.
        answer = self._client._http.request("POST", self._path + "/pull-request", json=request)
        return PullRequest.from_json(answer["pull_request"], created=answer.get("created"))

    def checkout(self, switch: bool = True, path: str | Path | None = None) -> CheckoutResult:
        """Fetch the session's branch into the local clone this kernel works in (its current
        directory, or ``path``) and, unless ``switch`` is False, switch to it. Refuses, and
        changes nothing, when that would touch uncommitted work or a diverged local branch."""
        return checkout(self.repo, self.branch, switch=switch, path=path)

    # -- prompts ----------------------------------------------------------------------------

    def prompt(self, text: str, model: str | None = None, client_request_id: str | None = None) -> str:
        """Queue a prompt and return its message id at once; follow it with ``.wait()``,
        ``.events`` or ``.subscribe()``."""
        self._ensure_stream()
        # The id makes a repeated POST (after a transport error) queue the prompt only once.
        body: dict[str, Any] = {"text": text, "client_request_id": client_request_id or uuid.uuid4().hex}
        if model:
            body["model"] = model
        accepted = self._client._http.request("POST", self._path + "/prompts", json=body, retry_transport_error=True)
        message_id = str(accepted["message_id"])
        with self._lock:
            if message_id not in self._pending:
                self._pending.append(message_id)
        return message_id

    def stop(self) -> None:
        """Interrupt the running prompt and cancel the waiting ones."""
        self._client._http.request("POST", self._path + "/stop", retry_transport_error=True)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the prompts this object sent have ended (or, if it sent none, the
        prompts of the session that run or wait). ``timeout`` is in seconds.

        Raises :class:`PromptFailed` when one ended with ``success`` false and was not stopped,
        :class:`TimeoutError` when ``timeout`` runs out, :class:`ConnectionLost` when the stream
        gave up reconnecting.
        """
        self._refuse_on_stream_thread("wait()")
        deadline = None if timeout is None else time.monotonic() + timeout
        stream = self._ensure_stream()
        stream.wait_synced(_remaining_s(deadline))
        with self._lock:
            targets = list(self._pending)
        if not targets:
            targets = _unfinished(self._transcript.snapshot())
        if not targets:
            return

        def check(events: list[Event]) -> list[Event] | str | None:
            ends = {e.data.get("message_id"): e for e in events if e.type == "execution_complete"}
            if all(t in ends for t in targets):
                return [ends[t] for t in targets]
            if stream.state == "failed" or not stream.running:
                return "failed"
            return None

        outcome = self._transcript.wait_until(check, _remaining_s(deadline))
        if outcome is None:
            raise TimeoutError(f"prompts {', '.join(targets)} of session {self._id} still run after {timeout} s")
        if outcome == "failed":
            raise ConnectionLost(0, "stream_failed", f"lost the session's stream while waiting: {stream.error}")
        with self._lock:
            self._pending = [m for m in self._pending if m not in targets]
        for end in outcome:
            if not end.success and not end.interrupted:
                raise PromptFailed(end.message_id, end.error)

    # -- the transcript ---------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        """The transcript so far (waits for the stream to catch up the first time)."""
        stream = self._ensure_stream()
        if not self._client._loop.in_loop_thread:  # a callback must not block the stream it reads
            stream.wait_synced(self._client.timeout_s)
        return self._transcript.snapshot()

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(kind, payload)`` from the stream thread; returns ``unsubscribe``.

        First comes the current ``connection`` state and the ``session`` dict, then every event
        so far, then live: ``event`` (each event dict once, in ``seq`` order), ``delta``,
        ``session`` and ``connection`` (``{state, attempt, max_attempts, error}``). Keep
        callbacks quick: they run on the thread that reads every session's stream.
        """
        subscription = _Subscription(callback)
        stream = self._ensure_stream()

        def attach() -> None:  # on the loop thread, so no event can slip between replay and live
            if not subscription.active:
                return
            replay: list[tuple[str, dict[str, Any]]] = []
            if stream.last_report["state"] != "idle":  # else the stream's first report is still to come
                replay.append(("connection", stream.last_report))
            replay.append(("session", self._data))
            replay += [("event", e.data) for e in self._transcript.snapshot()]
            for kind, payload in replay:
                _call(subscription, kind, payload)
            with self._lock:
                self._subscriptions.append(subscription)

        def unsubscribe() -> None:
            subscription.active = False
            with self._lock:
                if subscription in self._subscriptions:
                    self._subscriptions.remove(subscription)

        self._client._loop.call_soon(attach)
        return unsubscribe

    def _dispatch(self, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            _call(subscription, kind, payload)

    def _refuse_on_stream_thread(self, what: str) -> None:
        if self._client._loop.in_loop_thread:
            raise RuntimeError(f"{what} cannot run in a subscriber callback: it would block the stream it waits for")

    def _ensure_stream(self) -> SessionStream:
        with self._lock:
            if self._stream is None:
                self._stream = self._client._new_stream(self._id, self._transcript, self._update, self._dispatch)
            stream = self._stream
        stream.ensure_running()
        return stream

    def warm_up(self) -> None:
        """Start the sandbox now (the user is typing), so the next prompt need not wait for it."""
        self._ensure_stream().send_soon({"type": "typing"})

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        """Shown in a notebook, a session is its live chat (one widget per session)."""
        from ..widget.panel import widget_for

        return widget_for(self._client, self)._repr_mimebundle_(include=include, exclude=exclude)

    def __repr__(self) -> str:
        flags = ", archived" if self.archived else ""
        return f"<cloudws.Session {self._id[:8]} {self.title!r} on {self.repo} ({self.status}{flags})>"


def _call(subscription: _Subscription, kind: str, payload: dict[str, Any]) -> None:
    if not subscription.active:
        return
    try:
        subscription.callback(kind, payload)
    except Exception:  # one broken callback must not stop the stream or the others
        log.exception("cloudws subscriber failed on a %s frame", kind)


def _unfinished(events: list[Event]) -> list[str]:
    """Message ids of prompts the transcript shows accepted but not ended, in order."""
    ended = {e.data.get("message_id") for e in events if e.type == "execution_complete"}
    return [e.message_id for e in events if e.type == "user_message" and e.message_id not in ended]


def _remaining_s(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
