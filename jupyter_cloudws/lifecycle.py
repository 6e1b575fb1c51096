"""Lifecycle decisions as plain functions of state; the hub's I/O only carries them out."""

from __future__ import annotations

from enum import Enum

from .backends.base import Liveness


class SandboxAction(Enum):
    USE = "use"  # a live bridge is open: send on it
    ATTACH = "attach"  # the sandbox lives but we are not connected (server restart, dropped link)
    SPAWN = "spawn"  # no sandbox, or it died: start a fresh one on the session's branch
    REPORT_DEAD = "report_dead"  # it died: say so (sandbox_status failed) before spawning anew
    WAIT = "wait"  # the backend cannot tell whether it lives: ask again later, never replace it


def sandbox_action(*, sandbox_id: str | None, connected: bool, liveness: Liveness | None) -> SandboxAction:
    """What to do to get a bridge to the session's sandbox.

    ``liveness`` is the backend's answer for ``sandbox_id`` (``None`` when not asked). Only a
    sandbox known to be dead is reported and replaced: a guess never kills one.
    """
    if sandbox_id is None:
        return SandboxAction.SPAWN
    if connected:
        return SandboxAction.USE
    if liveness is Liveness.ALIVE:
        return SandboxAction.ATTACH
    if liveness is Liveness.DEAD:
        return SandboxAction.REPORT_DEAD
    return SandboxAction.WAIT


class MendAction(Enum):
    """What to do, on one attempt, about a lost bridge to a sandbox."""

    REATTACH = "reattach"  # it lives: connect again after a pause
    WAIT = "wait"  # the backend cannot tell: ask again after a pause, touch nothing
    REPORT_DEAD = "report_dead"  # it died, or lives but never answers: report it, end it
    GIVE_UP = "give_up"  # still unknown after every attempt: fail its prompt, keep the sandbox


def mend_action(liveness: Liveness, attempt: int, max_attempts: int) -> MendAction:
    """The decision for ``attempt`` (0-based) of ``max_attempts`` to mend a lost bridge.

    A sandbox that lives but could not be reattached in ``max_attempts`` tries is as good as
    dead to its prompt and is ended; one whose state stays unknown is left alone (it may be
    working) and only its prompt is failed.
    """
    if liveness is Liveness.DEAD:
        return MendAction.REPORT_DEAD
    if attempt < max_attempts:
        return MendAction.REATTACH if liveness is Liveness.ALIVE else MendAction.WAIT
    return MendAction.REPORT_DEAD if liveness is Liveness.ALIVE else MendAction.GIVE_UP


def prompt_after_catch_up(status: str) -> str:
    """Once a bridge has replayed what the sandbox logged, what to do with the session's prompt.

    ``send``: it never reached the sandbox (queued). ``resend``: it was running when the link broke;
    the daemon ignores a prompt id it already has, so resending is safe and covers a prompt lost
    in flight. ``skip``: the replay finished it, or the user cancelled it.
    """
    if status == "queued":
        return "send"
    if status == "running":
        return "resend"
    return "skip"


def reconnect_delay_s(attempt: int, *, base_s: float = 0.2, cap_s: float = 5.0) -> float:
    """Backoff between reattach attempts to a sandbox that is alive but unreachable."""
    # Clamp the exponent: 2 ** attempt stops fitting a float after ~1024 attempts.
    return min(cap_s, base_s * (2 ** min(max(attempt, 0), 64)))


def session_status(active_prompts: int) -> str:
    return "running" if active_prompts > 0 else "idle"


# Restore kinds (``SandboxSpec.restore_kind``); a clone has none.
SNAPSHOT = "snapshot"
PREBUILD = "prebuild"


def start_points(*, snapshot_id: str | None, prebuilt_id: str | None, supports_snapshot: bool) -> list[tuple[str | None, str]]:
    """Where a new sandbox for a session may start, best first, as (image id, restore kind).

    The session's latest snapshot (work tree, branch and conversation as they were) beats the
    repository's prebuilt image (cloned, setup run: only a fetch left), which beats a clone. A
    clone is always the last resort: an image that turns out missing or expired is skipped.
    """
    points: list[tuple[str | None, str]] = []
    if supports_snapshot:
        if snapshot_id:
            points.append((snapshot_id, SNAPSHOT))
        if prebuilt_id:
            points.append((prebuilt_id, PREBUILD))
    points.append((None, ""))
    return points
