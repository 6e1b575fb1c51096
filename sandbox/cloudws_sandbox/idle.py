"""When does an idle sandbox stop: one pure decision, and a one-shot timer that carries it out.

Both sides use it. The hub stops a sandbox whose session has had no prompt and no typing for
``sandbox_idle_timeout_s``; the runtime daemon ends itself when no hub has been connected and no
prompt has run for as long (a hub gone for good must not leave it running for ever).

There is no polling loop: each owner keeps one timer, armed for the moment its sandbox would
become idle, cancelled while it is busy, and re-armed by every activity.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

# The hub passes its timeout to the daemon in this environment variable, plus a grace: the hub
# stops an idle sandbox itself, and the daemon ends alone only when no hub has come by then.
IDLE_TIMEOUT_ENV = "CLOUDWS_IDLE_TIMEOUT_S"
RUNTIME_IDLE_GRACE_S = 60.0


@dataclass(frozen=True)
class IdleVerdict:
    stop: bool  # idle for the whole timeout: stop it now
    check_in_s: float | None  # when to decide again; None when only new activity can change it


def idle_verdict(*, busy: bool, last_activity_s: float, now_s: float, timeout_s: float) -> IdleVerdict:
    """Whether a sandbox should stop now, else how long until it might.

    ``busy``: something holds it (a running or queued prompt, a sandbox still starting, or, for
    the daemon, a connected hub); its end counts as activity, so nothing is due until then.
    ``timeout_s`` of 0 or less turns idle stops off.
    """
    if timeout_s <= 0 or busy:
        return IdleVerdict(False, None)
    remaining_s = last_activity_s + timeout_s - now_s
    if remaining_s <= 0:
        return IdleVerdict(True, None)
    return IdleVerdict(False, remaining_s)


class IdleTimer:
    """Calls ``on_idle`` once the owner has been idle for ``timeout_s``.

    ``is_busy`` is asked at every decision. Call :meth:`touch` on every activity (a prompt
    queued or finished, typing, a hub connecting or leaving): it records the time and re-arms.
    ``clock`` is injectable so tests can decide without waiting.
    """

    def __init__(self, timeout_s: float, is_busy: Callable[[], bool], on_idle: Callable[[], None], *,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.timeout_s = timeout_s
        self._is_busy = is_busy
        self._on_idle = on_idle
        self.clock = clock
        self.last_activity_s = clock()
        self._handle: asyncio.TimerHandle | None = None
        self.next_check_s: float | None = None  # delay of the armed timer, for tests and logs

    def verdict(self) -> IdleVerdict:
        return idle_verdict(busy=self._is_busy(), last_activity_s=self.last_activity_s, now_s=self.clock(),
                            timeout_s=self.timeout_s)  # fmt: skip

    def touch(self) -> None:
        self.last_activity_s = self.clock()
        self.check()

    def check(self) -> None:
        """Decide now: call ``on_idle``, or arm the timer for the next decision, or neither."""
        self.cancel()
        verdict = self.verdict()
        if verdict.stop:
            self._on_idle()
        elif verdict.check_in_s is not None:
            self.next_check_s = verdict.check_in_s
            self._handle = asyncio.get_running_loop().call_later(verdict.check_in_s, self.check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self.next_check_s = None
