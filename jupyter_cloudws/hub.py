"""The session hub: sessions, the prompt queue, the event log, fan-out and sandbox bridges.

Independent of tornado and jupyter-server, so the same core can be mounted in a standalone
JupyterHub service. One :class:`SessionRunner` per session owns its bridge and its queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from .backends.base import SandboxBackend, SandboxGone, SandboxSpec
from .bridge import BridgeClient, BridgeClosed
from .lifecycle import SandboxAction, prompt_after_catch_up, reconnect_delay_s, sandbox_action, session_status
from .protocol import (
    ExecutionComplete,
    PromptRequest,
    ProtocolError,
    SandboxStatusEvent,
    UserMessage,
    bridge_attach,
    bridge_prompt,
    delta_frame,
    event_frame,
    session_frame,
    subscribed_frame,
)
from .store import QueueFull, SessionStore, UnknownSession, new_id

log = logging.getLogger("jupyter_cloudws.hub")

Subscriber = Callable[[dict[str, Any]], None]
T = TypeVar("T")
MAX_REATTACH_ATTEMPTS = 5
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:[\w./~-]+$")


class HubError(Exception):
    """A request the hub refuses; ``status`` is the HTTP status, ``code`` the error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class HubSettings:
    max_prompt_bytes: int = 100_000
    max_queue_length: int = 20
    replay_limit: int = 500
    default_model: str | None = None
    allow_local_repos: bool = True
    agent_env: dict[str, str] = field(default_factory=dict, repr=False)


class SessionHub:
    def __init__(self, store: SessionStore, backend: SandboxBackend, settings: HubSettings) -> None:
        self.store = store
        self.backend = backend
        self.settings = settings
        self._runners: dict[str, SessionRunner] = {}
        self.closing = False

    async def start(self) -> None:
        """Find again what a previous server left: live sandboxes and unfinished prompts."""
        ids = set(self.store.session_ids_with_sandboxes()) | set(self.store.session_ids_with_active_prompts())
        for sid in ids:
            self.runner(sid).resume()

    async def close(self) -> None:
        """Let go of bridges; the sandboxes keep working for the next server."""
        self.closing = True
        await asyncio.gather(*(r.close() for r in self._runners.values()), return_exceptions=True)

    def runner(self, session_id: str) -> SessionRunner:
        if session_id not in self._runners:
            self.store.get_session(session_id)
            self._runners[session_id] = SessionRunner(self, session_id)
        return self._runners[session_id]

    # -- sessions ---------------------------------------------------------------------------

    def get_session(self, session_id: str) -> dict[str, Any]:
        try:
            return self.store.get_session(session_id)
        except UnknownSession:
            raise HubError(404, "unknown_session", f"no session {session_id!r}") from None

    def create_session(self, body: dict[str, Any], owner: str) -> dict[str, Any]:
        repo = self.check_repo(body.get("repo"))
        base_branch = _opt_text(body, "base_branch", 250) or ""
        title = _opt_text(body, "title", 200)
        model = _opt_text(body, "model", 100) or self.settings.default_model
        sid = new_id()
        title = title or _repo_name(repo)
        return self.store.create_session(
            owner=owner, repo=repo, base_branch=base_branch, branch=f"cloudws/{sid[:8]}", title=title,
            model=model, session_id=sid,
        )  # fmt: skip

    def update_session(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.get_session(session_id)
        changes: dict[str, Any] = {}
        if "title" in body:
            title = _opt_text(body, "title", 200)
            if not title or not title.strip():
                raise HubError(400, "bad_request", "'title' must be a non-empty string")
            changes["title"] = title.strip()
        if "archived" in body:
            if not isinstance(body["archived"], bool):
                raise HubError(400, "bad_request", "'archived' must be true or false")
            changes["archived"] = body["archived"]
        unknown = set(body) - {"title", "archived"}
        if unknown:
            raise HubError(400, "bad_request", f"cannot change {', '.join(sorted(unknown))}")
        archiving = changes.get("archived") is True and not self.store.get_session(session_id)["archived"]
        session = self.store.update_session(session_id, **changes)
        runner = self.runner(session_id)
        runner.publish(session_frame(session))
        if archiving:
            # An archived session keeps its transcript and branch, not a running sandbox.
            runner.spawn(runner.retire("the session was archived"))
        return session

    def check_repo(self, repo: Any) -> str:
        if not isinstance(repo, str) or not repo.strip():
            raise HubError(400, "bad_request", "'repo' must be a git URL or, on the local backend, a path")
        repo = repo.strip()
        parsed = urlparse(repo)
        if parsed.scheme in ("https", "http", "ssh", "git"):
            if parsed.password or (parsed.username and parsed.scheme in ("https", "http")):
                raise HubError(400, "credentials_in_url",
                               "put git credentials in the sandbox environment, not in the repository URL")  # fmt: skip
            return repo
        if _SCP_LIKE.match(repo):
            return repo
        if not self.settings.allow_local_repos:
            raise HubError(400, "bad_repo", f"{repo!r} is not a git URL (local repositories are not allowed here)")
        path = Path(parsed.path if parsed.scheme == "file" else os.path.expanduser(repo))
        if parsed.scheme not in ("", "file") or not path.is_absolute():
            raise HubError(400, "bad_repo", f"{repo!r} is neither a git URL nor an absolute path")
        if not ((path / "HEAD").is_file() or (path / ".git").exists()):
            raise HubError(400, "bad_repo", f"{str(path)!r} is not a git repository")
        return str(path)

    # -- prompts ----------------------------------------------------------------------------

    def submit_prompt(self, session_id: str, request: PromptRequest, author: dict[str, Any]) -> dict[str, Any]:
        """Queue a prompt (once per ``client_request_id``) and wake the session's runner."""
        session = self.get_session(session_id)
        if session["archived"]:
            raise HubError(409, "archived", "the session is archived; unarchive it to send prompts")
        try:
            prompt, created = self.store.enqueue_prompt(
                session_id, text=request.text, model=request.model, client_request_id=request.client_request_id,
                author=author, max_queue=self.settings.max_queue_length,
            )  # fmt: skip
        except QueueFull as exc:
            raise HubError(429, "queue_full", str(exc)) from None
        runner = self.runner(session_id)
        if created:
            runner.append(UserMessage(prompt["id"], request.text, author, request.model))
            runner.kick()
        return {"message_id": prompt["id"], "position": prompt["queue_position"], "duplicate": not created}

    async def stop(self, session_id: str) -> None:
        self.get_session(session_id)
        await self.runner(session_id).stop()

    def warm_up(self, session_id: str) -> None:
        """The user is typing: start the sandbox now so the prompt need not wait for it."""
        self.runner(session_id).warm_up()

    # -- events -----------------------------------------------------------------------------

    def events_page(self, session_id: str, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        self.get_session(session_id)
        return self.store.events_after(session_id, after, min(limit, self.settings.replay_limit))

    def subscribe(
        self, session_id: str, after: int | None, callback: Subscriber
    ) -> tuple[dict[str, Any], Callable[[], None] | None]:
        """The ``subscribed`` frame, and an unsubscribe function when live events follow.

        The replay is read and the callback registered with no ``await`` between, so no event
        falls in the gap and none comes twice. When ``has_more`` is true nothing is registered:
        the client subscribes again after the last event it got.
        """
        session = self.get_session(session_id)
        limit = self.settings.replay_limit
        if after is None:
            events, has_more = self.store.latest_events(session_id, limit)
            live = True
        else:
            events, has_more = self.store.events_after(session_id, after, limit)
            live = not has_more
        frame = subscribed_frame(session, events, has_more)
        if not live:
            return frame, None
        runner = self.runner(session_id)
        runner.subscribers.add(callback)
        return frame, lambda: runner.subscribers.discard(callback)


class SessionRunner:
    """Runs one session's prompts, one at a time, through its sandbox's bridge."""

    def __init__(self, hub: SessionHub, session_id: str) -> None:
        self.hub = hub
        self.store = hub.store
        self.session_id = session_id
        self.subscribers: set[Subscriber] = set()
        self.bridge: BridgeClient | None = None
        self._caught_up = asyncio.Event()
        self._attached_last_seq = 0
        self._bridge_lock = asyncio.Lock()
        self._worker: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._warmer: asyncio.Task[None] | None = None
        self._done: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- fan-out ----------------------------------------------------------------------------

    def publish(self, frame: dict[str, Any]) -> None:
        for callback in list(self.subscribers):
            try:
                callback(frame)
            except Exception:  # a broken subscriber must not stop the others
                log.exception("subscriber failed")

    def append(self, body: Any, *, sandbox_seq: int | None = None) -> dict[str, Any] | None:
        """Store an event, then show it: durable before it is seen."""
        event = self.store.append_event(self.session_id, body, sandbox_seq=sandbox_seq)
        if event is not None:
            self.publish(event_frame(event))
        return event

    def _set_session(self, **changes: Any) -> None:
        session = self.store.update_session(self.session_id, **changes)
        self.publish(session_frame(session))

    # -- the queue --------------------------------------------------------------------------

    def kick(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = self.spawn(self._work())

    def resume(self) -> None:
        """After a server start: reattach to a live sandbox and carry on with the queue."""
        if self.store.active_prompt_count(self.session_id):
            self.kick()
        else:
            self.warm_up(attach_only=True)

    def warm_up(self, *, attach_only: bool = False) -> None:
        if self.bridge is not None or (self._warmer is not None and not self._warmer.done()):
            return
        if attach_only and self.store.sandbox_record(self.session_id)["sandbox_id"] is None:
            return
        self._warmer = self.spawn(self._warm(spawn=not attach_only))

    async def _warm(self, *, spawn: bool) -> None:
        try:
            await self._ensure_bridge(spawn=spawn)
        except SandboxGone as exc:
            log.info("warm-up of session %s failed: %s", self.session_id, exc)

    async def _work(self) -> None:
        try:
            while (prompt := self.store.next_prompt(self.session_id)) is not None:
                if self.hub.closing:
                    return
                self._set_session(status="running")
                await self._run(prompt)
        finally:
            if not self.hub.closing:
                self._set_session(status=session_status(self.store.active_prompt_count(self.session_id)))

    async def _run(self, prompt: dict[str, Any]) -> None:
        message_id = prompt["id"]
        done = self._done.setdefault(message_id, asyncio.get_running_loop().create_future())
        try:
            await self._ensure_bridge()
        except SandboxGone as exc:
            self._finish(message_id, ExecutionComplete(message_id, False, error=f"no sandbox: {exc}"))
        # The replay may have finished it, or Stop cancelled it, while the bridge came up.
        if self.store.get_prompt(message_id)["status"] in ("queued", "running") and not done.done():
            await done
        self._done.pop(message_id, None)

    def _finish(self, message_id: str, complete: ExecutionComplete) -> None:
        """Close a prompt from the hub's side (no sandbox, sandbox died, cancelled)."""
        self.append(complete)
        self._prompt_finished(message_id, complete.success)

    def _prompt_finished(self, message_id: str, success: bool) -> None:
        try:
            if self.store.get_prompt(message_id)["status"] in ("queued", "running"):
                self.store.set_prompt_status(message_id, "done" if success else "failed")
        except KeyError:
            return
        done = self._done.get(message_id)
        if done is not None and not done.done():
            done.set_result(None)

    async def _send_current_prompt(self, *, just_attached: bool) -> None:
        """Send the prompt now in hand; after a fresh attach, resend a running one (safe: the
        daemon ignores a prompt id it already has, and it may have been lost in flight)."""
        prompt = self.store.next_prompt(self.session_id)
        if prompt is None or self.bridge is None:
            return
        action = prompt_after_catch_up(prompt["status"])
        if action == "skip" or (action == "resend" and not just_attached):
            return
        if action == "send":
            self.store.set_prompt_status(prompt["id"], "running")
        await self.bridge.send(bridge_prompt(prompt["id"], prompt["text"], prompt["model"], prompt["author"]))

    async def stop(self) -> None:
        """Interrupt the running prompt and cancel those waiting behind it."""
        running = False
        for prompt in self.store.active_prompts(self.session_id):
            if prompt["status"] == "running":
                running = True
                continue
            self.store.set_prompt_status(prompt["id"], "cancelled")
            self._finish(prompt["id"], ExecutionComplete(prompt["id"], False, error="cancelled before it ran",
                                                         interrupted=True))  # fmt: skip
        if running and self.bridge is not None:
            try:
                await self.bridge.send({"op": "interrupt"})
            except BridgeClosed:
                pass

    async def retire(self, reason: str) -> None:
        """Stop the work and end the sandbox; the next prompt starts a fresh one."""
        await self.stop()
        async with self._bridge_lock:
            sandbox_id = self.store.sandbox_record(self.session_id)["sandbox_id"]
            if sandbox_id is None:
                return
            # Forget it first, so losing the bridge below is not reported as a crash.
            self.store.update_session(self.session_id, sandbox_id=None)
            bridge, self.bridge = self.bridge, None
            await self.hub.backend.terminate(sandbox_id)
            if bridge is not None:
                await bridge.close()
        if self.store.get_session(self.session_id)["sandbox_status"] != "stopped":
            self.append(SandboxStatusEvent("stopped", reason))
            self._set_session(sandbox_status="stopped")

    # -- the bridge -------------------------------------------------------------------------

    async def _ensure_bridge(self, *, spawn: bool = True) -> None:
        """Get a caught-up bridge to the session's sandbox, starting one if ``spawn`` allows."""
        async with self._bridge_lock:
            record = self.store.sandbox_record(self.session_id)
            sandbox_id = record["sandbox_id"]
            connected = self.bridge is not None and not self.bridge.closed
            alive = None
            if sandbox_id is not None and not connected:
                alive = await self.hub.backend.is_alive(sandbox_id)
            action = sandbox_action(sandbox_id=sandbox_id, connected=connected, alive=alive)
            if action is SandboxAction.USE:
                just_attached = False
            else:
                if action is SandboxAction.REPORT_DEAD:
                    await self._report_dead(sandbox_id)
                    action = SandboxAction.SPAWN
                if not spawn:
                    return
                if action is SandboxAction.SPAWN:
                    sandbox_id = await self._spawn()
                assert sandbox_id is not None
                await self._attach(sandbox_id)
                just_attached = True
        await self._send_current_prompt(just_attached=just_attached)

    async def _spawn(self) -> str:
        session = self.store.get_session(self.session_id)
        self.append(SandboxStatusEvent("spawning", f"starting a {self.hub.backend.name} sandbox"))
        self._set_session(sandbox_status="spawning")
        spec = SandboxSpec(
            session_id=self.session_id, repo=session["repo"], base_branch=session["base_branch"],
            branch=session["branch"], model=session["model"], env=dict(self.hub.settings.agent_env),
        )  # fmt: skip
        try:
            sandbox_id = await self.hub.backend.create(spec)
        except Exception as exc:
            self.append(SandboxStatusEvent("failed", f"could not start a sandbox: {exc}"))
            self._set_session(sandbox_status="failed")
            raise SandboxGone(str(exc)) from exc
        # A new sandbox numbers its events from 1: the cursor restarts with it.
        self.store.update_session(self.session_id, backend=self.hub.backend.name, sandbox_id=sandbox_id,
                                  sandbox_cursor=0)  # fmt: skip
        return sandbox_id

    async def _attach(self, sandbox_id: str) -> None:
        stream = await self.hub.backend.connect(sandbox_id)
        bridge = BridgeClient(stream, sandbox_id)
        self.bridge = bridge
        self._caught_up.clear()
        cursor = self.store.sandbox_record(self.session_id)["sandbox_cursor"]
        self._reader = self.spawn(self._read(bridge))
        await bridge.send(bridge_attach(cursor))
        caught_up = self.spawn(self._caught_up.wait())
        try:
            await asyncio.wait([caught_up, self._reader], return_when=asyncio.FIRST_COMPLETED)
        finally:
            caught_up.cancel()
        if not self._caught_up.is_set():
            raise SandboxGone("the sandbox closed the bridge while catching up")

    async def _read(self, bridge: BridgeClient) -> None:
        try:
            async for frame in bridge.frames():
                self._on_frame(frame)
        finally:
            if self.bridge is bridge:
                self.bridge = None
            if not self.hub.closing:
                self.spawn(self._on_bridge_lost(bridge.sandbox_id))

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame["kind"]
        if kind == "attached":
            self._attached_last_seq = int(frame.get("last_seq") or 0)
            if self.store.sandbox_record(self.session_id)["sandbox_cursor"] >= self._attached_last_seq:
                self._caught_up.set()
        elif kind == "event":
            event = frame["event"]
            sandbox_seq = event.pop("seq")
            event.pop("ts", None)
            stored = self.append(event, sandbox_seq=sandbox_seq)
            if stored is not None:
                self._on_sandbox_event(stored)
            if sandbox_seq >= self._attached_last_seq:
                self._caught_up.set()
        elif kind == "delta":
            self.publish(delta_frame(str(frame.get("message_id")), int(frame.get("index") or 0),
                                     str(frame.get("text") or "")))  # fmt: skip
        elif kind == "error":
            log.warning("sandbox of session %s reported: %s", self.session_id, frame.get("message"))

    def _on_sandbox_event(self, event: dict[str, Any]) -> None:
        if event["type"] == "sandbox_status":
            self._set_session(sandbox_status=event["status"])
        elif event["type"] == "execution_complete":
            self._prompt_finished(event["message_id"], bool(event["success"]))

    async def _on_bridge_lost(self, sandbox_id: str) -> None:
        """Reattach while the sandbox lives; when it has died, say so and fail its prompt."""
        for attempt in range(MAX_REATTACH_ATTEMPTS):
            if self.hub.closing or self.bridge is not None:
                return
            if not await self.hub.backend.is_alive(sandbox_id):
                break
            await asyncio.sleep(reconnect_delay_s(attempt))
            try:
                await self._ensure_bridge()
                return
            except (SandboxGone, BridgeClosed, OSError) as exc:
                log.info("reattach to %s failed: %s", sandbox_id, exc)
        if self.hub.closing or self.bridge is not None:
            return
        if self.store.sandbox_record(self.session_id)["sandbox_id"] == sandbox_id:
            async with self._bridge_lock:
                await self._report_dead(sandbox_id)

    async def _report_dead(self, sandbox_id: str | None) -> None:
        if sandbox_id is None or self.store.sandbox_record(self.session_id)["sandbox_id"] != sandbox_id:
            return
        reason = await self.hub.backend.exit_reason(sandbox_id)
        self.store.update_session(self.session_id, sandbox_id=None)
        self.append(SandboxStatusEvent("failed", reason))
        self._set_session(sandbox_status="failed")
        prompt = self.store.next_prompt(self.session_id)
        if prompt is not None and prompt["status"] == "running":
            self._finish(prompt["id"], ExecutionComplete(prompt["id"], False, error=f"the sandbox died: {reason}"))

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` in the background, owned by this runner so that close() ends it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        bridge, self.bridge = self.bridge, None
        for task in list(self._tasks):
            task.cancel()
        if bridge is not None:
            await bridge.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _opt_text(body: dict[str, Any], key: str, max_len: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise HubError(400, "bad_request", f"{key!r} must be a string of at most {max_len} characters")
    return value


def _repo_name(repo: str) -> str:
    name = repo.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return name.removesuffix(".git") or repo


def protocol_error(exc: ProtocolError) -> HubError:
    status = 413 if exc.code == "prompt_too_large" else 400
    return HubError(status, exc.code, exc.message)
