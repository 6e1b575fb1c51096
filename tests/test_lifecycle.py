"""How the hub decides what to do with a session's sandbox and its prompts."""

from __future__ import annotations

import itertools

import pytest

from jupyter_cloudws.lifecycle import (
    SandboxAction,
    prompt_after_catch_up,
    reconnect_delay_s,
    sandbox_action,
    session_status,
)

A, S, U, D = SandboxAction.ATTACH, SandboxAction.SPAWN, SandboxAction.USE, SandboxAction.REPORT_DEAD

# (sandbox_id, connected, alive) -> action, for every combination.
TABLE = {
    # No sandbox recorded: start one, whatever else is claimed.
    (None, False, None): S,
    (None, False, False): S,
    (None, False, True): S,
    (None, True, None): S,
    (None, True, False): S,
    (None, True, True): S,
    # A live bridge is open: just use it, without asking the backend.
    ("sbx-1", True, None): U,
    ("sbx-1", True, True): U,
    ("sbx-1", True, False): U,
    # Not connected: reattach while it lives, otherwise report it dead.
    ("sbx-1", False, True): A,
    ("sbx-1", False, False): D,
    ("sbx-1", False, None): D,
}


def test_the_table_covers_every_combination():
    assert set(TABLE) == set(itertools.product([None, "sbx-1"], [False, True], [None, False, True]))


@pytest.mark.parametrize("state, expected", list(TABLE.items()), ids=lambda v: str(v))
def test_sandbox_action(state, expected):
    sandbox_id, connected, alive = state
    assert sandbox_action(sandbox_id=sandbox_id, connected=connected, alive=alive) is expected


def test_the_server_restarted_while_the_sandbox_kept_running():
    # The database remembers the sandbox, the new process has no bridge, the backend says alive.
    assert sandbox_action(sandbox_id="sbx-7", connected=False, alive=True) is SandboxAction.ATTACH


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
