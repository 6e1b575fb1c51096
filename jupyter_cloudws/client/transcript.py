"""A session's events in ``seq`` order, each once: what the stream has received so far.

Written from the stream thread, read from the caller's; one condition variable guards it and
wakes callers waiting for an event (``Session.wait``) or a change of the stream's state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .events import Event

T = TypeVar("T")


class SeqGap(Exception):
    """An event came with a ``seq`` past the next one: something was missed."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"expected event {expected}, got {got}")
        self.expected = expected
        self.got = got


class Transcript:
    def __init__(self) -> None:
        self._events: list[Event] = []
        self._cond = threading.Condition()

    @property
    def last_seq(self) -> int:
        with self._cond:
            return self._events[-1].seq if self._events else 0

    def add(self, data: dict[str, Any], *, allow_gap: bool = False) -> Event | None:
        """Append an event; None if it is one we have (``seq`` <= last). Raises :class:`SeqGap`
        if it skips ahead, unless ``allow_gap`` (the hub's own replay has the gap)."""
        seq = int(data["seq"])
        with self._cond:
            last = self._events[-1].seq if self._events else 0
            if seq <= last:
                return None
            if seq != last + 1 and not allow_gap:
                raise SeqGap(last + 1, seq)
            event = Event.from_dict(data)
            self._events.append(event)
            self._cond.notify_all()
            return event

    def snapshot(self) -> list[Event]:
        with self._cond:
            return list(self._events)

    def changed(self) -> None:
        """Wake the waiters: something they may be waiting on, other than an event, changed."""
        with self._cond:
            self._cond.notify_all()

    def wait_until(self, check: Callable[[list[Event]], T | None], timeout_s: float | None) -> T | None:
        """Call ``check(events)`` on each change until it returns something other than None;
        that value, or None when ``timeout_s`` runs out."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                result = check(self._events)
                if result is not None:
                    return result
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                # Bounded waits: a missed notify costs a second, never a hang.
                self._cond.wait(1.0 if remaining is None else min(remaining, 1.0))
