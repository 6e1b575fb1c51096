"""The idle decision (pure) and the one-shot timer that carries it out, with an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from cloudws_sandbox.idle import IdleTimer, IdleVerdict, idle_verdict


@pytest.mark.parametrize(
    ("busy", "last_activity_s", "now_s", "timeout_s", "expected"),
    [
        (False, 100.0, 100.0, 600.0, IdleVerdict(False, 600.0)),  # just active: check in a full timeout
        (False, 100.0, 550.0, 600.0, IdleVerdict(False, 150.0)),  # part way: check when it would be due
        (False, 100.0, 700.0, 600.0, IdleVerdict(True, None)),  # idle exactly the timeout: stop
        (False, 100.0, 9999.0, 600.0, IdleVerdict(True, None)),
        (True, 100.0, 9999.0, 600.0, IdleVerdict(False, None)),  # a running prompt holds it however long
        (False, 100.0, 9999.0, 0.0, IdleVerdict(False, None)),  # 0 turns idle stops off
        (False, 100.0, 9999.0, -1.0, IdleVerdict(False, None)),
    ],
)
def test_idle_verdict(busy: bool, last_activity_s: float, now_s: float, timeout_s: float, expected: IdleVerdict):
    assert idle_verdict(busy=busy, last_activity_s=last_activity_s, now_s=now_s, timeout_s=timeout_s) == expected


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


async def test_the_timer_is_armed_for_the_due_time_and_fires_once_idle() -> None:
    clock, fired, busy = Clock(), [], [False]
    timer = IdleTimer(60.0, lambda: busy[0], lambda: fired.append(clock.now_s), clock=clock)
    timer.touch()
    assert timer.next_check_s == 60.0 and fired == []
    clock.now_s += 45
    timer.check()  # as if the loop woke it early: not yet, armed for the rest
    assert timer.next_check_s == 15.0 and fired == []
    clock.now_s += 10
    timer.touch()  # activity pushes the stop a whole timeout away again
    assert timer.next_check_s == 60.0
    clock.now_s += 60
    timer.check()
    assert fired == [1115.0] and timer.next_check_s is None
    timer.cancel()


async def test_a_busy_owner_arms_no_timer_until_it_is_done() -> None:
    clock, fired, busy = Clock(), [], [True]
    timer = IdleTimer(60.0, lambda: busy[0], lambda: fired.append(clock.now_s), clock=clock)
    timer.touch()
    assert timer.next_check_s is None, "nothing can be due while a prompt runs"
    clock.now_s += 3600
    timer.check()
    assert fired == []
    busy[0] = False
    timer.touch()  # the prompt ended: that is activity, the timeout counts from here
    assert timer.next_check_s == 60.0 and fired == []
    timer.cancel()


async def test_the_timer_fires_on_the_real_loop_without_polling() -> None:
    idle = asyncio.Event()
    checks: list[float] = []

    def never_busy() -> bool:
        checks.append(asyncio.get_running_loop().time())
        return False

    timer = IdleTimer(0.05, never_busy, idle.set)
    timer.touch()
    await asyncio.wait_for(idle.wait(), 5)
    assert len(checks) <= 3, f"decided {len(checks)} times: one timer, not a polling loop"


async def test_a_cancelled_timer_never_fires() -> None:
    fired: list[int] = []
    timer = IdleTimer(0.01, lambda: False, lambda: fired.append(1))
    timer.touch()
    timer.cancel()
    other = asyncio.Event()
    IdleTimer(0.05, lambda: False, other.set).touch()  # a later timer: by then the first was due
    await asyncio.wait_for(other.wait(), 5)
    assert fired == []
