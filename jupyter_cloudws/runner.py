"""One session's worker: runs its prompts one at a time through its sandbox's bridge.

It carries out the decisions of ``lifecycle.py`` (spawn, reattach, report a dead sandbox,
resend after a reconnect), takes in the sandbox's events, and fans them out to subscribers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .backends.base import SandboxGone
from .bridge import BridgeClient, BridgeClosed
from .lifecycle import (
    MendAction,
    SandboxAction,
    mend_action,
    prompt_after_catch_up,
    reconnect_delay_s,
    sandbox_action,
    session_status,
)
from .pushing import BranchPusher
from .snapshots import Snapshotter
from .spawning import SpawnFailed, start_sandbox
from cloudws_sandbox.idle import IdleTimer
from cloudws_sandbox.protocol import (
    ErrorEvent,
    ExecutionComplete,
    ProtocolError,
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
MAX_SPAWNS_PER_PROMPT = 2  # a prompt whose fresh sandboxes keep dying before it is sent fails
BRIDGE_CLOSE_TIMEOUT_S = 5.0  # closing a half-open link may wait for a peer that never answers
MAX_BAD_FRAMES_RECORDED = 5  # per connection; after that one note, so a flood cannot fill the DB
MAX_BAD_FRAMES_PER_WINDOW = 20  # per session and window, over all its connections
BAD_FRAME_WINDOW_S = 60.0
UNKNOWN_GIVE_UP = (
    "the hub could not tell whether the sandbox is alive; it was left as it is "
    "(send the prompt again once the backend answers)"
)


class SandboxUnknown(SandboxGone):
    """The backend cannot tell whether the session's sandbox lives: it is left alone."""


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
        self._mending = 0  # lost-bridge handlers at work: a running prompt may wait for them
        self._retiring = False  # retire() is ending the sandbox, and then the prompt it ran
        self._spawns = 0  # sandboxes started by this runner
        self._bad_window_start_s = float("-inf")  # when the current bad-frame window began
        self._bad_in_window = 0  # bad-frame notes recorded in it
        self.snapshots = Snapshotter(self)  # after each prompt, when the backend can
        self.pusher = BranchPusher(self)  # pushes asked for by a pull request
        self._from_snapshot: tuple[str, str] | None = None  # (sandbox id, snapshot) it started from

    # -- fan-out ----------------------------------------------------------------------------

    def publish(self, frame: dict[str, Any]) -> None:
        for callback in list(self.subscribers):
            try:
                callback(frame)
            except Exception:  # a broken subscriber must not stop the others
                log.exception("subscriber failed")

    def append(
        self, body: Any, *, sandbox_seq: int | None = None, finishes: tuple[str, bool] | None = None
    ) -> dict[str, Any] | None:
        """Store an event, then show it: durable before it is seen. ``finishes`` names the prompt
        (and its success) that the event completes: its status changes in the same transaction,
        so a crash between the two can never leave a completed prompt running for ever."""
        with self.store.transaction():
            event = self.store.append_event(self.session_id, body, sandbox_seq=sandbox_seq)
            if event is not None and finishes is not None:
                self._close_prompt(*finishes)
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
        except (SandboxGone, BridgeClosed, OSError) as exc:
            log.info("warm-up of session %s failed: %s", self.session_id, exc)
        except Exception:
            log.exception("warm-up of session %s failed in the hub", self.session_id)
        finally:
            self._check_in_flight()

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
            await self._deliver(message_id)
            # Sent: now only the sandbox ends it, or its death, or Stop; the replay may already have.
            if self._status(message_id) in ("queued", "running") and not done.done():
                await done
        finally:
            self._done.pop(message_id, None)

    async def _deliver(self, message_id: str) -> None:
        """Get the prompt to a sandbox, starting one if need be.

        The hub ends a prompt itself only while no sandbox can have it (it is still ``queued``):
        one that went out is ended by its sandbox's ``execution_complete``, or by the hub once
        that sandbox is known dead, never twice.
        """
        error = "no sandbox could be reached"
        attempts = self.hub.settings.max_reattach_attempts
        spawns_before = self._spawns
        for attempt in range(attempts + 1):
            if self._status(message_id) != "queued" or self.hub.closing:
                break
            if self._spawns - spawns_before >= MAX_SPAWNS_PER_PROMPT:
                break  # fresh sandboxes die before taking it: starting more would not help
            if attempt:
                await asyncio.sleep(reconnect_delay_s(attempt - 1, base_s=self.hub.settings.reconnect_base_s))
            try:
                await self._ensure_bridge(for_work=True)
            except SpawnFailed as exc:
                error = self.hub.redactor.text(f"no sandbox: {exc}")
                break
            except SandboxUnknown:
                error = UNKNOWN_GIVE_UP
            except (SandboxGone, BridgeClosed, OSError) as exc:
                # The link broke or the sandbox went: try again. The reason may quote its log.
                error = self.hub.redactor.text(f"no sandbox: {exc}")
            except Exception as exc:  # a bug must neither leave it waiting nor lose it
                log.exception("delivering prompt %s of session %s failed in the hub", message_id, self.session_id)
                error = f"hub error: {exc}"
        status = self._status(message_id)
        if status == "queued" and not self.hub.closing:
            self._finish(message_id, ExecutionComplete(message_id, False, error=error))
        elif status == "running":
            self._check_in_flight()

    def _status(self, message_id: str) -> str:
        try:
            return str(self.store.get_prompt(message_id)["status"])
        except KeyError:
            return "unknown"

    def _finish(self, message_id: str, complete: ExecutionComplete) -> None:
        """Close a prompt from the hub's side (no sandbox, sandbox died, cancelled)."""
        self.append(complete, finishes=(message_id, complete.success))
        self._prompt_finished(message_id)

    def _fail_in_flight(self, reason: str, *, interrupted: bool = False) -> None:
        """The sandbox is gone: end the prompt it was running. A prompt still waiting to be
        sent stays queued: the worker gets it a fresh sandbox."""
        prompt = self.store.next_prompt(self.session_id)
        if prompt is not None and prompt["status"] == "running":
            self._finish(prompt["id"], ExecutionComplete(prompt["id"], False, error=reason, interrupted=interrupted))

    def _check_in_flight(self) -> None:
        """A running prompt needs a live bridge or a mend under way; with neither it would
        wait for ever, so it is mended now, or failed when there is nothing left to mend."""
        if self.hub.closing or self._mending or self._retiring or (self.bridge is not None and not self.bridge.closed):
            return
        prompt = self.store.next_prompt(self.session_id)
        if prompt is None or prompt["status"] != "running":
            return
        sandbox_id = self.store.sandbox_record(self.session_id)["sandbox_id"]
        if sandbox_id is not None:
            self._mend(sandbox_id)
        else:
            self._fail_in_flight("the link to the sandbox was lost")

    def _close_prompt(self, message_id: str, success: bool) -> None:
        """Mark an open prompt done or failed (in the transaction that stores its completion)."""
        try:
            if self.store.get_prompt(message_id)["status"] in ("queued", "running"):
                self.store.set_prompt_status(message_id, "done" if success else "failed")
        except KeyError:
            pass

    def _prompt_finished(self, message_id: str) -> None:
        """Wake what waits on a prompt whose completion ``append`` has stored and closed."""
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
        await self.bridge.send(bridge_prompt(prompt["id"], prompt["text"], prompt["model"], prompt["author"]))
        # Running once it went out: a send that failed leaves it queued, for a fresh sandbox if
        # need be (a resend to the same sandbox is harmless: the daemon ignores a known id).
        if action == "send" and self._status(prompt["id"]) == "queued":
            self.store.set_prompt_status(prompt["id"], "running")
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

    @property
    def retiring(self) -> bool:
        return self._retiring

    async def retire(self, reason: str) -> None:
        """Stop the work and end the sandbox, and delete the session's snapshot; the next
        prompt starts a fresh sandbox from a clone (and the saved conversation)."""
        await self.stop()
        self._retiring = True
        try:
            await self.snapshots.drain()  # never end a sandbox in the middle of its snapshot
            async with self._bridge_lock:
                sandbox_id = self.store.sandbox_record(self.session_id)["sandbox_id"]
                if sandbox_id is None:
                    return
                # Forget it first, so losing the bridge below is not reported as a crash.
                self.store.update_session(self.session_id, sandbox_id=None)
                bridge, self.bridge = self.bridge, None
                try:
                    await self.hub.backend.terminate(sandbox_id)
                except Exception as exc:
                    log.exception("ending sandbox %s of session %s failed", sandbox_id, self.session_id)
                    self.append(ErrorEvent("terminate_failed", f"could not end sandbox {sandbox_id}: {exc}"))
                finally:
                    if bridge is not None:
                        await bridge.close()
        finally:
            self._retiring = False
            # Terminated (or let go of), the daemon logs no completion for what it was doing.
            self._fail_in_flight(reason, interrupted=True)
            await self.snapshots.discard()
        if self.store.get_session(self.session_id)["sandbox_status"] != "stopped":
            self.append(SandboxStatusEvent("stopped", reason))
            self._set_session(sandbox_status="stopped")

    async def push_branch(self, author: dict[str, Any]) -> None:
        """Have the running sandbox commit what is left and push the branch, now; see pushing.py."""
        await self.pusher.push(author)

    # -- the bridge -------------------------------------------------------------------------

    async def attach_existing(self) -> None:
        """Reattach to the session's sandbox if it lives; never start one."""
        await self._ensure_bridge(spawn=False)

    async def _ensure_bridge(self, *, spawn: bool = True, for_work: bool = False) -> None:
        """Get a caught-up bridge to the session's sandbox, starting one if ``spawn`` allows
        (and, ``for_work``, only while a prompt is left to run). Raises :class:`SandboxUnknown`
        when the backend cannot tell whether the sandbox lives."""
        async with self._bridge_lock:
            record = self.store.sandbox_record(self.session_id)
            sandbox_id = record["sandbox_id"]
            connected = self.bridge is not None and not self.bridge.closed
            liveness = None
            if sandbox_id is not None and not connected:
                liveness = await self.hub.backend.liveness(sandbox_id)
            action = sandbox_action(sandbox_id=sandbox_id, connected=connected, liveness=liveness)
            if action is SandboxAction.WAIT:
                raise SandboxUnknown(f"the backend cannot tell whether sandbox {sandbox_id} is alive")
            if action is SandboxAction.USE:
                just_attached = False
            else:
                if action is SandboxAction.REPORT_DEAD:
                    await self._report_dead(sandbox_id)
                    action = SandboxAction.SPAWN
                    if for_work and self.store.next_prompt(self.session_id) is None:
                        return  # nothing is left to run
                if action is SandboxAction.SPAWN:
                    if not spawn:
                        return
                    sandbox_id = await self._spawn()
                assert sandbox_id is not None
                await self._attach(sandbox_id)
                just_attached = True
        await self._send_current_prompt(just_attached=just_attached)

    async def _spawn(self) -> str:
        backend = self.hub.backend
        self.append(SandboxStatusEvent("spawning", f"starting a {backend.name} sandbox"))
        self._set_session(sandbox_status="spawning")
        self._spawns += 1
        try:
            sandbox_id, snapshot_id = await start_sandbox(self.hub, self.session_id, self.append)
            self._from_snapshot = (sandbox_id, snapshot_id) if snapshot_id else None
            return sandbox_id
        except SpawnFailed as exc:
            self.append(SandboxStatusEvent("failed", self.hub.redactor.text(f"could not start a sandbox: {exc}")))
            self._set_session(sandbox_status="failed")
            raise

    async def _attach(self, sandbox_id: str) -> None:
        stream = await self.hub.backend.connect(sandbox_id)
        settings = self.hub.settings
        # Silence for longer than the timeout means a half-open link: the pings go unanswered.
        silence_s = settings.bridge_heartbeat_timeout_s if settings.bridge_heartbeat_s > 0 else None
        bridge = BridgeClient(stream, sandbox_id, on_bad_frame=self._on_bad_frame, silence_timeout_s=silence_s)
        self.bridge = bridge
        self._caught_up.clear()
        cursor = self.store.sandbox_record(self.session_id)["sandbox_cursor"]
        self._reader = self.spawn(self._read(bridge))
        await bridge.send(bridge_attach(cursor))
        await bridge.send_credential(self.hub.github.credential_for(self.store.get_session(self.session_id)["repo"]))
        if settings.bridge_heartbeat_s > 0:
            self.spawn(self._heartbeat(bridge, settings.bridge_heartbeat_s))
        caught_up = self.spawn(self._caught_up.wait())
        timeout_s = settings.attach_timeout_s
        try:
            await asyncio.wait([caught_up, self._reader], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            caught_up.cancel()
        if not self._caught_up.is_set():
            await bridge.close()
            raise SandboxGone(f"the sandbox did not catch up within {timeout_s:g} s")
        self.idle.touch()

    @staticmethod
    async def _heartbeat(bridge: BridgeClient, interval_s: float) -> None:
        """Ping the daemon now and then: its pongs keep a healthy but quiet link from looking
        silent, and their absence lets the reader find a half-open one."""
        while not bridge.closed:
            await asyncio.sleep(interval_s)
            try:
                await bridge.send({"op": "ping"})
            except BridgeClosed:
                return

    async def _read(self, bridge: BridgeClient) -> None:
        try:
            async for frame in bridge.frames():
                try:
                    self._on_frame(frame)
                except ProtocolError as exc:
                    self._on_bad_frame(bridge, exc.code, exc.message)
                except Exception as exc:  # a frame must never end the reader
                    log.exception("session %s could not take a frame from sandbox %s", self.session_id,
                                  bridge.sandbox_id)  # fmt: skip
                    self._on_bad_frame(bridge, "hub_error", f"the hub could not take a frame: {exc!r}")
        finally:
            if self.bridge is bridge:
                self.bridge = None
                self.pusher.on_bridge_closed()
            if not self.hub.closing:
                self._mend(bridge.sandbox_id)
            try:
                # Else a daemon would go on writing to a socket nobody reads.
                await asyncio.wait_for(bridge.close(), BRIDGE_CLOSE_TIMEOUT_S)
            except (ConnectionError, OSError, asyncio.TimeoutError):
                pass

    def _on_bad_frame(self, bridge: BridgeClient, code: str, message: str) -> None:
        """A frame the hub refused: logged, and recorded in the session a few times per link
        and per minute (a sandbox that hangs up and floods again cannot fill the database)."""
        bridge.bad_frames += 1
        now_s = asyncio.get_running_loop().time()
        if now_s - self._bad_window_start_s > BAD_FRAME_WINDOW_S:
            self._bad_window_start_s, self._bad_in_window = now_s, 0
        if bridge.bad_frames > MAX_BAD_FRAMES_RECORDED + 1 or self._bad_in_window > MAX_BAD_FRAMES_PER_WINDOW:
            return
        self._bad_in_window += 1
        if bridge.bad_frames <= MAX_BAD_FRAMES_RECORDED and self._bad_in_window <= MAX_BAD_FRAMES_PER_WINDOW:
            log.warning("sandbox %s of session %s sent a bad frame (%s): %s", bridge.sandbox_id, self.session_id,
                        code, message)  # fmt: skip
            self.append(ErrorEvent("bad_frame", f"the sandbox sent a frame the hub refused ({code}): {message}"))
        else:
            log.warning("sandbox %s of session %s: further bad frames are not recorded", bridge.sandbox_id,
                        self.session_id)  # fmt: skip
            self.append(ErrorEvent("bad_frame", "the sandbox keeps sending bad frames; further ones are not "
                                                "recorded for a while"))  # fmt: skip

    def _on_frame(self, frame: dict[str, Any]) -> None:
        """One frame that passed :func:`parse_bridge_reply` (so its fields have their types)."""
        kind = frame["kind"]
        if kind == "attached":
            self._attached_last_seq = frame["last_seq"]
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
            event = dict(frame["event"])
            sandbox_seq = event.pop("seq")
            event.pop("ts", None)
            if event["type"] == "execution_complete" and not self._may_complete(event["message_id"]):
                # Not a prompt of this session that is still open: keep what it says, as a note.
                event = ErrorEvent(
                    "stray_completion",
                    f"the sandbox reported prompt {event['message_id']} complete (success={event['success']}), "
                    "but it is not an open prompt of this session",
                    message_id=event["message_id"],
                ).to_dict()
            finishes = (event["message_id"], bool(event["success"])) if event["type"] == "execution_complete" else None
            stored = self.append(event, sandbox_seq=sandbox_seq, finishes=finishes)
            if stored is not None:
                self._on_sandbox_event(stored)
            self.pusher.on_stored(sandbox_seq)
            if sandbox_seq >= self._attached_last_seq:
                self._caught_up.set()
        elif kind == "delta":
            self.publish(delta_frame(frame["message_id"], frame["index"], frame["text"]))
        elif kind == "ack" and frame.get("op") == "push":
            self.pusher.on_ack(frame)
        elif kind == "error":
            # Untrusted and up to a frame long: quote only its start.
            log.warning("sandbox of session %s reported: %.500s", self.session_id, str(frame.get("message")))

    def _may_complete(self, message_id: str) -> bool:
        try:
            prompt = self.store.get_prompt(message_id)
        except KeyError:
            return False
        return prompt["session_id"] == self.session_id and prompt["status"] in ("queued", "running")

    def _on_sandbox_event(self, event: dict[str, Any]) -> None:
        if event["type"] == "sandbox_status":
            self._set_session(sandbox_status=event["status"])
            started = self._from_snapshot
            if event["status"] == "failed" and started and started[0] == self.store.sandbox_record(self.session_id)["sandbox_id"]:
                self._from_snapshot = None  # its start-up failed: the snapshot cannot be used
                self.spawn(self.snapshots.drop_unusable(*started, event.get("detail") or "start-up failed"))
        elif event["type"] == "execution_complete":
            self.snapshots.request()  # first: the idle timer that _prompt_finished touches must wait for it
            self._prompt_finished(event["message_id"])

    def _mend(self, sandbox_id: str) -> None:
        """Start mending a lost bridge, unless a mend is under way (whose failed attaches would
        otherwise each start another)."""
        if self._mending:
            return
        self._mending += 1
        self.spawn(self._on_bridge_lost(sandbox_id))

    async def _on_bridge_lost(self, sandbox_id: str) -> None:
        """Reattach while the sandbox lives; when it has died, say so and fail its prompt; when
        the backend cannot tell, wait, and in the end fail the prompt but leave the sandbox.
        Never spawns: a fresh sandbox is started only for a prompt."""
        settings = self.hub.settings
        try:
            for attempt in range(settings.max_reattach_attempts + 1):
                if not self._still_current(sandbox_id):
                    return
                liveness = await self.hub.backend.liveness(sandbox_id)
                action = mend_action(liveness, attempt, settings.max_reattach_attempts)
                if action is MendAction.GIVE_UP:
                    self._fail_in_flight(UNKNOWN_GIVE_UP)
                    return
                if action is MendAction.REPORT_DEAD:
                    break
                await asyncio.sleep(reconnect_delay_s(attempt, base_s=settings.reconnect_base_s))
                if not self._still_current(sandbox_id) or action is MendAction.WAIT:
                    continue
                try:
                    await self._ensure_bridge(spawn=False)
                    return
                except SandboxUnknown:
                    continue
                except (SandboxGone, BridgeClosed, OSError) as exc:
                    log.info("reattach to %s failed: %s", sandbox_id, exc)
                except Exception:
                    log.exception("reattach to %s failed in the hub", sandbox_id)
            if self._still_current(sandbox_id):
                async with self._bridge_lock:
                    await self._report_dead(sandbox_id)
        except Exception:
            log.exception("mending the bridge of session %s to %s failed", self.session_id, sandbox_id)
        finally:
            self._mending -= 1
            self._check_in_flight()

    def _still_current(self, sandbox_id: str) -> bool:
        """Whether a lost bridge to ``sandbox_id`` is still ours to mend."""
        return (
            not self.hub.closing
            and (self.bridge is None or self.bridge.closed)
            and self.store.sandbox_record(self.session_id)["sandbox_id"] == sandbox_id
        )

    async def _report_dead(self, sandbox_id: str | None) -> None:
        if sandbox_id is None or self.store.sandbox_record(self.session_id)["sandbox_id"] != sandbox_id:
            return
        self.store.update_session(self.session_id, sandbox_id=None)
        try:
            reason = self.hub.redactor.text(await self.hub.backend.exit_reason(sandbox_id))
        except Exception as exc:
            log.exception("asking why sandbox %s ended failed", sandbox_id)
            reason = f"the sandbox stopped (its exit reason is unknown: {exc})"
        try:
            await self.hub.backend.terminate(sandbox_id)  # its agent and tools may have outlived it
        except Exception:
            log.exception("cleaning up dead sandbox %s failed", sandbox_id)
        self.append(SandboxStatusEvent("failed", reason))
        self._set_session(sandbox_status="failed")
        self._fail_in_flight(f"the sandbox died: {reason}")

    async def end_sandbox(self, sandbox_id: str, reason: str) -> None:
        """End a sandbox that cannot serve (a failed restore), failing the prompt it had; queued
        prompts stay, for a fresh sandbox."""
        async with self._bridge_lock:
            if self.store.sandbox_record(self.session_id)["sandbox_id"] != sandbox_id:
                return
            self.store.update_session(self.session_id, sandbox_id=None)  # first: no crash report
            bridge, self.bridge = self.bridge, None
            if bridge is not None:
                await bridge.close()
            try:
                await self.hub.backend.terminate(sandbox_id)
            except Exception:
                log.exception("ending sandbox %s of session %s failed", sandbox_id, self.session_id)
        self._fail_in_flight(f"the sandbox was ended: {reason}")
        self.kick()  # a queued prompt gets a fresh sandbox

    # -- idle stop --------------------------------------------------------------------------

    def _idle_held(self) -> bool:
        """Whether the idle timer must wait: no sandbox to stop, a prompt running or queued, a
        snapshot being taken of the sandbox, or a push under way."""
        return (
            self.hub.closing
            or self.snapshots.busy
            or self.pusher.busy
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
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self.hub.release_if_idle(self)

    def at_rest(self) -> bool:
        """Nothing here to keep in memory: no work, no sandbox (nor link to one), no listener.
        The store holds the rest; a new runner takes over from it."""
        return (
            not self._tasks
            and not self.subscribers
            and self.bridge is None
            and self._interrupt_pending is None
            and self.store.sandbox_record(self.session_id)["sandbox_id"] is None
            and not self.store.active_prompt_count(self.session_id)
        )

    async def close(self) -> None:
        self.idle.cancel()
        bridge, self.bridge = self.bridge, None
        for task in list(self._tasks):
            task.cancel()
        if bridge is not None:
            await bridge.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
