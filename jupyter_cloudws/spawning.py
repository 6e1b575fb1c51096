"""Starting a session's sandbox: from the best start point there is, each step shown as it runs.

The choice of start point is ``lifecycle.start_points`` (a pure function); this module carries it
out: the session's snapshot, else the repository's prebuilt image, else a clone, falling back
past an image that turns out gone, with a note in the transcript.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cloudws_sandbox.protocol import ErrorEvent, EventBody, ProtocolError, SandboxProgressEvent

from .backends.base import SandboxGone, SandboxSpec, SnapshotGone
from .lifecycle import SNAPSHOT, start_points

if TYPE_CHECKING:
    from .hub import SessionHub

log = logging.getLogger("jupyter_cloudws.spawning")

MAX_DETAIL_CHARS = 500
Append = Callable[[EventBody], Any]


class SpawnFailed(SandboxGone):
    """The backend could not start a sandbox."""


class ProgressReporter:
    """The ``progress`` callback a backend's ``create`` gets: each step it reports becomes a
    ``sandbox_progress`` event, timed from the moment the step was reported running."""

    def __init__(self, append: Append, redact: Callable[[str], str]) -> None:
        self.append = append
        self.redact = redact
        self.started_s: dict[str, float] = {}

    def __call__(self, step: str, state: str, detail: str = "") -> None:
        now_s = asyncio.get_running_loop().time()
        if state == "running":
            self.started_s.setdefault(step, now_s)
        elapsed_ms = int((now_s - self.started_s.get(step, now_s)) * 1000)
        try:
            self.append(SandboxProgressEvent(step, state, elapsed_ms, self.redact(detail)[:MAX_DETAIL_CHARS]))
        except ProtocolError:
            log.warning("backend reported an unknown progress step %r/%r", step, state)


def session_spec(hub: SessionHub, session: dict[str, Any], image_id: str | None, kind: str) -> SandboxSpec:
    """What a sandbox of ``session`` is started with, from ``image_id`` (None: a clone)."""
    return SandboxSpec(
        session_id=session["id"], repo=session["repo"], base_branch=session["base_branch"],
        branch=session["branch"], model=session["model"], owner=session["owner"], env=hub.sandbox_env(),
        secret_names=hub.settings.secret_names, conversation_dir=hub.conversation_dir(session["id"]),
        restore_from=image_id, restore_kind=kind or SNAPSHOT, setup_timeout_s=hub.settings.setup_timeout_s,
        git_credentials=hub.github.credential_for(session["repo"]) is not None,
    )  # fmt: skip


async def start_sandbox(hub: SessionHub, session_id: str, append: Append) -> tuple[str, str | None]:
    """Start a sandbox for the session and store its id with it; returns the id and the snapshot
    it was started from (None: not from a snapshot). Raises :class:`SpawnFailed`."""
    store, backend = hub.store, hub.backend
    session = store.get_session(session_id)
    points = start_points(
        snapshot_id=store.sandbox_record(session_id)["snapshot_id"],
        prebuilt_id=hub.prebuilt_image(session["repo"], session["base_branch"]),
        supports_snapshot=backend.supports_snapshot,
    )
    for image_id, kind in points:
        progress = ProgressReporter(append, hub.redactor.text)
        progress("start", "running", f"from {kind} {image_id}" if image_id else "")
        try:
            sandbox_id = await backend.create(session_spec(hub, session, image_id, kind), progress=progress)
        except SnapshotGone as exc:
            progress("start", "failed", str(exc))
            if kind == SNAPSHOT and store.sandbox_record(session_id)["snapshot_id"] == image_id:
                # Only the one that failed: a newer snapshot stored meanwhile stays.
                store.update_session(session_id, snapshot_id=None, snapshot_at=None)
            elif image_id is not None:
                hub.prebuilt_image_gone(image_id, str(exc))
            fallback = "a clone of the branch and the saved conversation" if kind == SNAPSHOT else "a clone"
            append(ErrorEvent(f"{kind}_unavailable", hub.redactor.text(
                f"the {kind} {image_id} is gone ({exc}); starting from {fallback} instead")))  # fmt: skip
            continue
        except Exception as exc:
            progress("start", "failed", str(exc))
            raise SpawnFailed(str(exc)) from exc
        progress("start", "done", sandbox_id)
        # A new sandbox numbers its events from 1: the cursor restarts with it.
        store.update_session(session_id, backend=backend.name, sandbox_id=sandbox_id, sandbox_cursor=0)
        return sandbox_id, image_id if kind == SNAPSHOT else None
    raise AssertionError("start_points always ends with a clone")
