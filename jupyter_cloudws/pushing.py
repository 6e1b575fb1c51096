"""Pushing a session's branch on demand, through its sandbox: what a pull request asks for when
the branch's last push failed or never happened.

The hub sends the daemon a ``push`` op and waits, bounded, for its ack and then for the ``git``
event the ack names to be stored, so whoever asked reads the outcome from the session's log.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

from .backends.base import SandboxGone
from .bridge import BridgeClosed
from cloudws_sandbox.protocol import bridge_push

if TYPE_CHECKING:
    from .runner import SessionRunner

PUSH_TIMEOUT_S = 120.0  # the daemon's push may wait on a slow host; a request must not hang for ever


class PushRefused(Exception):
    """No push was made: ``code`` is ``busy`` (a prompt holds the sandbox), ``not_running`` (no
    sandbox to push from), ``unavailable`` (it is starting, or its start-up failed) or ``timeout``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BranchPusher:
    """One session's on-demand pushes, and the acks and stored events they wait for."""

    def __init__(self, runner: SessionRunner) -> None:
        self.runner = runner
        self.timeout_s = PUSH_TIMEOUT_S
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._stored: list[tuple[int, asyncio.Future[None]]] = []  # (sandbox seq, woken once it is stored)

    async def push(self, author: dict[str, Any]) -> None:
        """Have the sandbox commit what is left and push the branch; returns once its ``git``
        event is stored (pushed, or why not). Raises :class:`PushRefused` when no push was made."""
        runner = self.runner
        if runner.store.active_prompt_count(runner.session_id):
            raise PushRefused("busy", "a prompt is running")
        bridge = runner.bridge
        if (bridge is None or bridge.closed) and runner.store.sandbox_record(runner.session_id)["sandbox_id"]:
            try:  # a sandbox whose link is being mended: reattach, never start one
                await runner.attach_existing()
            except (SandboxGone, BridgeClosed, OSError):
                pass
            bridge = runner.bridge
        if bridge is None or bridge.closed:
            raise PushRefused("not_running", "the session's sandbox is not running")
        deadline_s = time.monotonic() + self.timeout_s
        request_id = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        answered = self._acks[request_id] = loop.create_future()
        try:
            try:
                await bridge.send(bridge_push(request_id, author))
            except BridgeClosed:
                raise PushRefused("not_running", "the link to the session's sandbox was lost") from None
            ack = await self._wait(answered, deadline_s)
        finally:
            self._acks.pop(request_id, None)
            runner.idle.touch()  # the idle count starts again from the push's end
        if ack["result"] != "done":
            raise PushRefused(ack["result"], ack.get("message") or ack["result"])
        if runner.store.sandbox_record(runner.session_id)["sandbox_cursor"] < ack["seq"]:
            # The ack overtook its event (a replay was under way): wait until the event is in.
            stored: asyncio.Future[None] = loop.create_future()
            self._stored.append((ack["seq"], stored))
            try:
                await self._wait(stored, deadline_s)
            finally:
                self._stored = [(seq, waiting) for seq, waiting in self._stored if waiting is not stored]

    async def _wait(self, future: asyncio.Future[Any], deadline_s: float) -> Any:
        try:
            return await asyncio.wait_for(future, max(deadline_s - time.monotonic(), 0.0))
        except asyncio.TimeoutError:
            raise PushRefused("timeout", f"the sandbox did not finish the push within {self.timeout_s:g} s") from None

    @property
    def busy(self) -> bool:
        """A push is under way: the sandbox must not be stopped for idleness meanwhile."""
        return bool(self._acks or self._stored)

    def on_bridge_closed(self) -> None:
        """The link the pushes were sent over is gone, and their acks with it: end their waits
        now rather than at the timeout. (An ack already in waits for its event, which a
        reattach replays.)"""
        for waiting in self._acks.values():
            if not waiting.done():
                waiting.set_exception(PushRefused(
                    "not_running", "the link to the session's sandbox was lost while it pushed; ask again"))

    def on_ack(self, frame: dict[str, Any]) -> None:
        """A ``push`` ack from the sandbox (its fields checked by ``parse_bridge_reply``)."""
        waiting = self._acks.get(frame["request_id"])
        if waiting is not None and not waiting.done():
            waiting.set_result(frame)

    def on_stored(self, sandbox_seq: int) -> None:
        """The hub has taken in the sandbox's events up to ``sandbox_seq``."""
        still = []
        for seq, waiting in self._stored:
            if seq <= sandbox_seq:
                if not waiting.done():
                    waiting.set_result(None)
            else:
                still.append((seq, waiting))
        self._stored = still
