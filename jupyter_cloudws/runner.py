"""One session's worker: runs its prompts one at a time through its sandbox's bridge.

It carries out the decisions of ``lifecycle.py`` (spawn, reattach, report a dead sandbox,
resend after a reconnect), takes in the sandbox's events, and fans them out to subscribers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .backends.base import SandboxGone, SandboxSpec
from .bridge import BridgeClient, BridgeClosed
from .lifecycle import SandboxAction, prompt_after_catch_up, reconnect_delay_s, sandbox_action, session_status
from cloudws_sandbox.idle import IdleTimer
from cloudws_sandbox.protocol import (
    ExecutionComplete,
    SandboxStatusEvent,
    bridge_attach,
    bridge_prompt,
    delta_frame,
    event_frame,
    session_frame,
)

if TYPE_CHECKING:
    from .hub import SessionHub

log = logging.getLogger("jupyter_cloudws.runner")

Subscriber = Callable[[dict[str, Any]], None]
T = TypeVar("T")
MAX_REATTACH_ATTEMPTS = 5


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
        self._interrupt_pending: str | None = None  # a Stop that waits for the bridge, by prompt id
        self.idle = IdleTimer(hub.settings.sandbox_idle_timeout_s, self._idle_held, self._on_idle)

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
        self.idle.touch()
        if self._worker is None or self._worker.done():
            self._worker = self.spawn(self._work())

    def resume(self) -> None:
        """After a server start: reattach to a live sandbox and carry on with the queue."""
        if self.store.active_prompt_count(self.session_id):
            self.kick()
        else:
            self.warm_up(attach_only=True)

    def warm_up(self, *, attach_only: bool = False) -> None:
        self.idle.touch()  # typing, or a server start: the sandbox is wanted a while longer
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
            await self._ensure_bridge(for_work=True)
        except SandboxGone as exc:
            self._finish(message_id, ExecutionComplete(message_id, False, error=f"no sandbox: {exc}"))
        except BridgeClosed:
            pass  # the lost-bridge handler reattaches and resends, or fails the prompt
        except Exception as exc:  # a bug must not leave the prompt running for ever
            log.exception("prompt %s of session %s failed in the hub", message_id, self.session_id)
            self._finish(message_id, ExecutionComplete(message_id, False, error=f"hub error: {exc}"))
        # The replay may have finished it, or Stop cancelled it, while the bridge came up.
        if self.store.get_prompt(message_id)["status"] in ("queued", "running") and not done.done():
            await done
        self._done.pop(message_id, None)

    def _finish(self, message_id: str, complete: ExecutionComplete) -> None:
        """Close a prompt from the hub's side (no sandbox, sandbox died, cancelled)."""
        self.append(complete)
        self._prompt_finished(message_id, complete.success)

    def _fail_in_flight(self, reason: str, *, interrupted: bool = False) -> None:
        """The sandbox is gone: end the prompt it was running, or that the worker waits to send
        (still queued when the bridge broke before it went out)."""
        prompt = self.store.next_prompt(self.session_id)
        if prompt is not None and (prompt["status"] == "running" or prompt["id"] in self._done):
            self._finish(prompt["id"], ExecutionComplete(prompt["id"], False, error=reason, interrupted=interrupted))

    def _prompt_finished(self, message_id: str, success: bool) -> None:
        try:
            if self.store.get_prompt(message_id)["status"] in ("queued", "running"):
                self.store.set_prompt_status(message_id, "done" if success else "failed")
        except KeyError:
            return
        if self._interrupt_pending == message_id:
            self._interrupt_pending = None
        done = self._done.get(message_id)
        if done is not None and not done.done():
            done.set_result(None)
        self.idle.touch()

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
        if self._interrupt_pending == prompt["id"]:
            self._interrupt_pending = None
            await self.bridge.send({"op": "interrupt"})

    async def stop(self) -> None:
        """Interrupt the running prompt and cancel those waiting behind it."""
        running = None
        for prompt in self.store.active_prompts(self.session_id):
            if prompt["status"] == "running":
                running = prompt["id"]
                continue
            self.store.set_prompt_status(prompt["id"], "cancelled")
            self._finish(prompt["id"], ExecutionComplete(prompt["id"], False, error="cancelled before it ran",
                                                         interrupted=True))  # fmt: skip
        if running is None:
            return
        try:
            if self.bridge is None:
                raise BridgeClosed("no bridge")
            await self.bridge.send({"op": "interrupt"})
        except BridgeClosed:
            self._interrupt_pending = running  # sent with the prompt once the bridge is back

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
        # Terminated, the daemon logs no completion for what it was doing: end it here.
        self._fail_in_flight(reason, interrupted=True)
        if self.store.get_session(self.session_id)["sandbox_status"] != "stopped":
            self.append(SandboxStatusEvent("stopped", reason))
            self._set_session(sandbox_status="stopped")

    # -- the bridge -------------------------------------------------------------------------

    async def _ensure_bridge(self, *, spawn: bool = True, for_work: bool = False) -> None:
        """Get a caught-up bridge to the session's sandbox, starting one if ``spawn`` allows
        (and, ``for_work``, only while a prompt is left to run)."""
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
                    if for_work and self.store.next_prompt(self.session_id) is None:
                        return  # reporting it failed the only prompt there was
                if action is SandboxAction.SPAWN:
                    if not spawn:
                        return
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
            branch=session["branch"], model=session["model"], env=self.hub.sandbox_env(),
            secret_names=self.hub.settings.secret_names, conversation_dir=self.hub.conversation_dir(self.session_id),
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
        timeout_s = self.hub.settings.attach_timeout_s
        try:
            await asyncio.wait([caught_up, self._reader], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            caught_up.cancel()
        if not self._caught_up.is_set():
            await bridge.close()
            raise SandboxGone(f"the sandbox did not catch up within {timeout_s:.0f} s")
        self.idle.touch()

    async def _read(self, bridge: BridgeClient) -> None:
        try:
            async for frame in bridge.frames():
                self._on_frame(frame)
        finally:
            if self.bridge is bridge:
                self.bridge = None
            try:
                await bridge.close()  # else a daemon would go on writing to a socket nobody reads
            except (ConnectionError, OSError):
                pass
            if not self.hub.closing:
                self.spawn(self._on_bridge_lost(bridge.sandbox_id))

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame["kind"]
        if kind == "attached":
            self._attached_last_seq = int(frame.get("last_seq") or 0)
            cursor = self.store.sandbox_record(self.session_id)["sandbox_cursor"]
            if cursor > self._attached_last_seq:
                # The sandbox's log lost events the hub has: its next ones are new, not replays.
                log.warning("sandbox log of session %s ends at %s, before the hub's cursor %s",
                            self.session_id, self._attached_last_seq, cursor)  # fmt: skip
                self.store.update_session(self.session_id, sandbox_cursor=self._attached_last_seq)
                cursor = self._attached_last_seq
            if cursor >= self._attached_last_seq:
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
        """Reattach while the sandbox lives; when it has died, say so and fail its prompt.
        Never spawns: a fresh sandbox is started only for a prompt."""
        for attempt in range(MAX_REATTACH_ATTEMPTS):
            if not self._still_current(sandbox_id):
                return
            if not await self.hub.backend.is_alive(sandbox_id):
                break
            await asyncio.sleep(reconnect_delay_s(attempt))
            if not self._still_current(sandbox_id):
                return
            try:
                await self._ensure_bridge(spawn=False)
                return
            except (SandboxGone, BridgeClosed, OSError) as exc:
                log.info("reattach to %s failed: %s", sandbox_id, exc)
        if self._still_current(sandbox_id):
            async with self._bridge_lock:
                await self._report_dead(sandbox_id)

    def _still_current(self, sandbox_id: str) -> bool:
        """Whether a lost bridge to ``sandbox_id`` is still ours to mend."""
        return (
            not self.hub.closing
            and self.bridge is None
            and self.store.sandbox_record(self.session_id)["sandbox_id"] == sandbox_id
        )

    async def _report_dead(self, sandbox_id: str | None) -> None:
        if sandbox_id is None or self.store.sandbox_record(self.session_id)["sandbox_id"] != sandbox_id:
            return
        reason = self.hub.redactor.text(await self.hub.backend.exit_reason(sandbox_id))
        self.store.update_session(self.session_id, sandbox_id=None)
        try:
            await self.hub.backend.terminate(sandbox_id)  # its agent and tools may have outlived it
        except Exception:
            log.exception("cleaning up dead sandbox %s failed", sandbox_id)
        self.append(SandboxStatusEvent("failed", reason))
        self._set_session(sandbox_status="failed")
        self._fail_in_flight(f"the sandbox died: {reason}")

    # -- idle stop --------------------------------------------------------------------------

    def _idle_held(self) -> bool:
        """Whether the idle timer must wait: no sandbox to stop, or a prompt running or queued."""
        return (
            self.hub.closing
            or self.store.sandbox_record(self.session_id)["sandbox_id"] is None
            or self.store.active_prompt_count(self.session_id) > 0
        )

    def _on_idle(self) -> None:
        self.spawn(self._stop_idle())

    async def _stop_idle(self) -> None:
        """End the sandbox of a session left idle; its branch and conversation stay, so the next
        prompt carries on in a fresh one."""
        async with self._bridge_lock:
            if not self.idle.verdict().stop:
                return  # a prompt or typing came while the lock was held
            sandbox_id = self.store.sandbox_record(self.session_id)["sandbox_id"]
            # Forgotten first and let go of, so the end of the bridge is not taken for a crash.
            self.store.update_session(self.session_id, sandbox_id=None)
            bridge, self.bridge = self.bridge, None
            if bridge is not None:
                await bridge.close()
            try:
                await self.hub.backend.terminate(sandbox_id)
            except Exception:  # what is left of it ends itself at its own idle timeout
                log.exception("stopping idle sandbox %s failed", sandbox_id)
            detail = (f"idle: no prompt for {self.idle.timeout_s:g} s; the next prompt starts a fresh sandbox "
                      "and resumes the conversation")  # fmt: skip
            self.append(SandboxStatusEvent("stopped", detail))
            self._set_session(sandbox_status="stopped")

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` in the background, owned by this runner so that close() ends it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        self.idle.cancel()
        bridge, self.bridge = self.bridge, None
        for task in list(self._tasks):
            task.cancel()
        if bridge is not None:
            await bridge.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
