"""Snapshots of a session's sandbox, taken in the background after each prompt.

A snapshot keeps what a fresh clone cannot give back: the work tree as the agent left it
(files git ignores, uncommitted state, installed dependencies), the branch, and the agent's
conversation. When the session's sandbox is gone (idle stop, lifetime reached, crash), the next
prompt starts from the latest one (``lifecycle.start_points``).

One snapshot at a time per session: a prompt that completes while one is being taken asks for
one more after it, never for many. While a snapshot runs the idle stop waits (it would end the
sandbox being copied), and so does archiving, which then deletes the session's snapshot. A
failed snapshot is an ``error`` event (``snapshot_failed``); the prompt stays done, and the
next prompt never waits for a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from cloudws_sandbox.protocol import ErrorEvent

if TYPE_CHECKING:
    from .runner import SessionRunner

log = logging.getLogger("jupyter_cloudws.snapshots")

MAX_ERROR_CHARS = 500
DRAIN_TIMEOUT_S = 120.0  # the longest an archive waits for a snapshot under way  # of a backend's error, in the snapshot_failed event


class Snapshotter:
    """Takes the snapshots of one session's sandbox, one at a time."""

    def __init__(self, runner: SessionRunner) -> None:
        self.runner = runner
        self._task: asyncio.Task[None] | None = None
        self._wanted = False  # a prompt completed since the snapshot under way started

    @property
    def busy(self) -> bool:
        """Whether a snapshot is being taken (the sandbox must not be ended meanwhile)."""
        return self._task is not None

    def request(self) -> None:
        """A prompt completed: snapshot the sandbox now, or once the snapshot under way is done."""
        if not self.runner.hub.backend.supports_snapshot or self._refused():
            return
        self._wanted = True
        if self._task is None:
            self._task = self.runner.spawn(self._take_while_wanted())

    def _refused(self) -> bool:
        """No snapshot for a session going away (archived, or the server shutting down)."""
        runner = self.runner
        return runner.hub.closing or runner.retiring or bool(runner.store.get_session(runner.session_id)["archived"])

    async def _take_while_wanted(self) -> None:
        try:
            while self._wanted and not self._refused():
                self._wanted = False
                await self._take()
        finally:
            self._task = None
            self._wanted = False
            # The idle timer was held while this ran: decide now whether the sandbox is idle.
            self.runner.idle.check()

    async def _take(self) -> None:
        runner = self.runner
        store, backend, sid = runner.store, runner.hub.backend, runner.session_id
        sandbox_id = store.sandbox_record(sid)["sandbox_id"]
        if sandbox_id is None:
            return  # it died after its prompt: the last snapshot is the latest state there is
        started_s = time.monotonic()
        try:
            snapshot_id = await backend.snapshot(sandbox_id)
        except Exception as exc:
            self._failed(f"could not snapshot sandbox {sandbox_id}: {exc}")
            return
        previous = store.sandbox_record(sid)["snapshot_id"]
        store.update_session(sid, snapshot_id=snapshot_id, snapshot_at=time.time())
        log.info("snapshot %s of sandbox %s (session %s) took %.2f s", snapshot_id, sandbox_id, sid,
                 time.monotonic() - started_s)  # fmt: skip
        if previous and previous != snapshot_id:
            await self._delete(previous)
        conversation_dir = runner.hub.conversation_dir(sid)
        if conversation_dir is not None:
            try:
                # For a start without the snapshot (expired, gone): a clone then resumes this.
                await backend.save_conversation(sandbox_id, conversation_dir)
            except Exception as exc:
                self._failed(f"snapshot {snapshot_id} was taken, but the conversation could not be saved: {exc}")

    def _failed(self, message: str) -> None:
        runner = self.runner
        text = runner.hub.redactor.text(message)[:MAX_ERROR_CHARS]
        log.warning("session %s: %s", runner.session_id, text)
        runner.append(ErrorEvent("snapshot_failed", text))

    async def _delete(self, snapshot_id: str) -> None:
        try:
            await self.runner.hub.backend.delete_snapshot(snapshot_id)
        except Exception:  # a snapshot left over costs storage only; cloud ones expire
            log.exception("deleting snapshot %s of session %s failed", snapshot_id, self.runner.session_id)

    async def drain(self) -> None:
        """Wait for the snapshot under way, if any, and take no further one. For ending the
        sandbox (archive): the caller keeps new requests out (``runner.retiring``)."""
        self._wanted = False
        task = self._task
        if task is not None:
            # Bounded: a huge or stuck copy must not hold an archive for ever; ending the
            # sandbox then makes the snapshot fail, which is only a note.
            await asyncio.wait([task], timeout=DRAIN_TIMEOUT_S)

    async def drop_unusable(self, sandbox_id: str, snapshot_id: str, detail: str) -> None:
        """A sandbox started from ``snapshot_id`` failed to start up (its work tree could not be
        restored): forget and delete the snapshot, and end that sandbox, so that the session's
        next prompt starts from a clone and the saved conversation instead of failing again."""
        runner = self.runner
        store, sid = runner.store, runner.session_id
        if store.sandbox_record(sid)["snapshot_id"] == snapshot_id:
            store.update_session(sid, snapshot_id=None, snapshot_at=None)
            await self._delete(snapshot_id)
        runner.append(ErrorEvent("snapshot_unusable", runner.hub.redactor.text(
            f"the sandbox could not start from snapshot {snapshot_id} ({detail[:MAX_ERROR_CHARS]}); it is "
            "dropped, and the next prompt starts from a clone of the branch and the saved conversation")))  # fmt: skip
        await runner.end_sandbox(sandbox_id, f"it could not start from its snapshot: {detail[:MAX_ERROR_CHARS]}")

    async def discard(self) -> None:
        """Forget and delete the session's snapshot (an archived session keeps none)."""
        store, sid = self.runner.store, self.runner.session_id
        snapshot_id = store.sandbox_record(sid)["snapshot_id"]
        if snapshot_id:
            store.update_session(sid, snapshot_id=None, snapshot_at=None)
            await self._delete(snapshot_id)
