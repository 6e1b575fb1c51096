"""How the hub decides what to do with a session's sandbox and its prompts."""

from __future__ import annotations

import itertools

import pytest

from jupyter_cloudws.backends.base import Liveness, SandboxBackend
from jupyter_cloudws.lifecycle import (
    MendAction,
    SandboxAction,
    mend_action,
    prompt_after_catch_up,
    reconnect_delay_s,
    sandbox_action,
    session_status,
    start_points,
)

A, S, U, D, W = (SandboxAction.ATTACH, SandboxAction.SPAWN, SandboxAction.USE, SandboxAction.REPORT_DEAD,
                 SandboxAction.WAIT)  # fmt: skip
ALIVE, DEAD, UNKNOWN = Liveness.ALIVE, Liveness.DEAD, Liveness.UNKNOWN
LIVENESS = [None, ALIVE, DEAD, UNKNOWN]  # None: the backend was not asked

# (sandbox_id, connected, liveness) -> action, for every combination.
TABLE = {
    # No sandbox recorded: start one, whatever else is claimed.
    **{(None, connected, liveness): S for connected in (False, True) for liveness in LIVENESS},
    # A live bridge is open: just use it, without asking the backend.
    **{("sbx-1", True, liveness): U for liveness in LIVENESS},
    # Not connected: reattach while it lives, report it only when it is known dead, and on a
    # guess (unknown, or not asked) touch nothing.
    ("sbx-1", False, ALIVE): A,
    ("sbx-1", False, DEAD): D,
    ("sbx-1", False, UNKNOWN): W,
    ("sbx-1", False, None): W,
}


def test_the_table_covers_every_combination():
    assert set(TABLE) == set(itertools.product([None, "sbx-1"], [False, True], LIVENESS))


@pytest.mark.parametrize("state, expected", list(TABLE.items()), ids=lambda v: str(v))
def test_sandbox_action(state, expected):
    sandbox_id, connected, liveness = state
    assert sandbox_action(sandbox_id=sandbox_id, connected=connected, liveness=liveness) is expected


def test_unknown_never_kills_or_replaces_a_sandbox():
    for connected, liveness in itertools.product([False, True], [UNKNOWN, None]):
        assert sandbox_action(sandbox_id="sbx-1", connected=connected, liveness=liveness) not in (D, S)
    for attempt in range(10):
        assert mend_action(UNKNOWN, attempt, max_attempts=3) in (MendAction.WAIT, MendAction.GIVE_UP)


@pytest.mark.parametrize(
    "liveness, attempt, expected",
    [
        (ALIVE, 0, MendAction.REATTACH),
        (ALIVE, 2, MendAction.REATTACH),
        (ALIVE, 3, MendAction.REPORT_DEAD),  # lives but never answered: as good as dead
        (DEAD, 0, MendAction.REPORT_DEAD),
        (DEAD, 3, MendAction.REPORT_DEAD),
        (UNKNOWN, 0, MendAction.WAIT),
        (UNKNOWN, 2, MendAction.WAIT),
        (UNKNOWN, 3, MendAction.GIVE_UP),  # fail the prompt, keep the sandbox
    ],
)
def test_mend_action(liveness, attempt, expected):
    assert mend_action(liveness, attempt, max_attempts=3) is expected


def test_the_server_restarted_while_the_sandbox_kept_running():
    # The database remembers the sandbox, the new process has no bridge, the backend says alive.
    assert sandbox_action(sandbox_id="sbx-7", connected=False, liveness=ALIVE) is SandboxAction.ATTACH


@pytest.mark.parametrize(
    "status, expected",
    [
        ("queued", "send"),
        ("running", "resend"),
        ("completed", "skip"),
        ("failed", "skip"),
        ("cancelled", "skip"),
        ("interrupted", "skip"),
    ],
)
def test_prompt_after_catch_up(status, expected):
    assert prompt_after_catch_up(status) == expected


def test_reconnect_delay_starts_small_and_doubles():
    assert reconnect_delay_s(0) == pytest.approx(0.2)
    assert reconnect_delay_s(1) == pytest.approx(0.4)
    assert reconnect_delay_s(2) == pytest.approx(0.8)
    assert reconnect_delay_s(-3) == pytest.approx(0.2)  # nonsense attempts count as the first


def test_reconnect_delay_grows_until_the_cap_and_stays_there():
    delays = [reconnect_delay_s(n) for n in range(12)]
    assert all(a < b for a, b in zip(delays, delays[1:]) if b < 5.0)
    assert delays == sorted(delays)
    assert max(delays) == 5.0
    assert delays[-1] == 5.0


def test_reconnect_delay_respects_custom_base_and_cap():
    assert reconnect_delay_s(0, base_s=1.0, cap_s=3.0) == 1.0
    assert reconnect_delay_s(1, base_s=1.0, cap_s=3.0) == 2.0
    assert reconnect_delay_s(2, base_s=1.0, cap_s=3.0) == 3.0


@pytest.mark.parametrize("attempt", [64, 1_100, 100_000])
def test_reconnect_delay_is_capped_even_after_very_many_attempts(attempt):
    # An ever-retrying caller must get the cap, not an OverflowError from 2 ** attempt.
    assert reconnect_delay_s(attempt) == 5.0


@pytest.mark.parametrize("active, expected", [(0, "idle"), (1, "running"), (7, "running")])
def test_session_status(active, expected):
    assert session_status(active) == expected


class _Backend(SandboxBackend):
    def __init__(self, answer: object) -> None:
        super().__init__()
        self.answer = answer

    async def is_alive(self, sandbox_id: str) -> bool:
        if isinstance(self.answer, Exception):
            raise self.answer
        return bool(self.answer)


@pytest.mark.parametrize(
    "answer, expected", [(True, ALIVE), (False, DEAD), (ConnectionError("API down"), UNKNOWN), (TimeoutError(), UNKNOWN)]
)
async def test_liveness_wraps_is_alive(answer, expected):
    assert await _Backend(answer).liveness("sbx-1") is expected


class TestStartPoints:
    def test_a_snapshot_comes_first_then_the_repository_image_then_a_clone(self) -> None:
        assert start_points(snapshot_id="im-s", prebuilt_id="im-p", supports_snapshot=True) == [
            ("im-s", "snapshot"), ("im-p", "prebuild"), (None, ""),
        ]  # fmt: skip

    def test_without_a_snapshot_a_prebuilt_image_is_used(self) -> None:
        assert start_points(snapshot_id=None, prebuilt_id="im-p", supports_snapshot=True) == [
            ("im-p", "prebuild"), (None, ""),
        ]  # fmt: skip

    def test_a_backend_without_snapshots_always_clones(self) -> None:
        assert start_points(snapshot_id="im-s", prebuilt_id="im-p", supports_snapshot=False) == [(None, "")]
