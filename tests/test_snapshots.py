"""Snapshots after each prompt, staged step by step with the fake backend: taken one at a time,
never in the way of a prompt, never cut short by an idle stop or an archive, and used by the next
sandbox of the session (or skipped, with a note, when gone)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hub_fakes import ADA, WAIT_S, completions, events_of, make_hub, new_session, running_on, send, status

from cloudws_sandbox.protocol import SandboxStatusEvent
from jupyter_cloudws.hub import SessionHub
from jupyter_cloudws.store import SessionStore
from jupyter_cloudws.testing.fake_backend import FakeBackend, FakeSandbox, settle, until

SECRET = "s3cr3t-token-value"


@pytest.fixture
def fake_backend() -> FakeBackend:
    backend = FakeBackend()
    backend.supports_snapshot = True  # type: ignore[misc]
    return backend


@pytest.fixture
def fake_hub(memory_store: SessionStore, fake_backend: FakeBackend, tmp_path: Path):
    (tmp_path / "data").mkdir()
    hub = make_hub(memory_store, fake_backend, data_dir=str(tmp_path / "data"), agent_env={"TOKEN": SECRET},
                   secret_names=("TOKEN",))  # fmt: skip
    yield hub
    asyncio.get_event_loop().run_until_complete(hub.close())


class Clock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def snapshot_of(hub: SessionHub, sid: str) -> str | None:
    return hub.store.sandbox_record(sid)["snapshot_id"]


async def prompt_done(hub: SessionHub, backend: FakeBackend, sid: str, text: str, *, count: int = 1,
                      prompt: int = 1) -> tuple[str, FakeSandbox]:  # fmt: skip
    """Send ``text``, let the ``count``-th sandbox complete it as its ``prompt``-th prompt."""
    message_id = send(hub, sid, text)
    sandbox = await running_on(backend, count=count, prompt=prompt)
    sandbox.complete(message_id)
    await until(lambda: status(hub, message_id) == "done", WAIT_S)
    return message_id, sandbox


async def test_a_snapshot_is_taken_after_each_prompt_and_replaces_the_one_before(fake_hub, fake_backend, tmp_path):
    sid = new_session(fake_hub)
    _, sandbox = await prompt_done(fake_hub, fake_backend, sid, "one")
    first = await until(lambda: snapshot_of(fake_hub, sid), WAIT_S)
    assert fake_backend.snapshots[first] == sandbox.id
    assert fake_hub.store.sandbox_record(sid)["snapshot_at"] is not None
    await until(lambda: fake_backend.saved_conversations, WAIT_S)
    assert fake_backend.saved_conversations == [(sandbox.id, str(tmp_path / "data" / "conversations" / sid))]

    await prompt_done(fake_hub, fake_backend, sid, "two", prompt=2)
    second = await until(lambda: (s := snapshot_of(fake_hub, sid)) != first and s, WAIT_S)
    await until(lambda: fake_backend.deleted_snapshots, WAIT_S)
    assert fake_backend.deleted_snapshots == [first], "the one before is let go of"
    assert list(fake_backend.snapshots) == [second]


async def test_prompts_completing_during_a_snapshot_make_exactly_one_more_and_are_not_held_up(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    fake_backend.snapshot_gate = asyncio.Event()
    await prompt_done(fake_hub, fake_backend, sid, "one")
    await until(lambda: len(fake_backend.snapshot_calls) == 1, WAIT_S)

    # The snapshot hangs; the next prompts run and complete meanwhile.
    await prompt_done(fake_hub, fake_backend, sid, "two", prompt=2)
    await prompt_done(fake_hub, fake_backend, sid, "three", prompt=3)
    await settle()
    assert len(fake_backend.snapshot_calls) == 1, "one at a time"

    fake_backend.snapshot_gate.set()
    await until(lambda: len(fake_backend.snapshots) == 1 and len(fake_backend.snapshot_calls) == 2, WAIT_S)
    await settle()
    assert len(fake_backend.snapshot_calls) == 2, "one more for both completions, not one each"
    (latest,) = fake_backend.snapshots
    assert snapshot_of(fake_hub, sid) == latest
    assert not fake_hub.runner(sid).snapshots.busy


async def test_the_idle_stop_waits_for_a_snapshot_under_way(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    runner = fake_hub.runner(sid)
    clock = runner.idle.clock = Clock(runner.idle.last_activity_s)
    fake_backend.snapshot_gate = asyncio.Event()
    _, sandbox = await prompt_done(fake_hub, fake_backend, sid, "one")
    await until(lambda: fake_backend.snapshot_calls, WAIT_S)

    clock.now_s += runner.idle.timeout_s + 1  # idle for longer than the timeout, mid-snapshot
    runner.idle.check()
    await settle()
    assert fake_backend.terminated == [], "not ended while its snapshot is taken"

    fake_backend.snapshot_gate.set()
    await until(lambda: fake_backend.terminated == [sandbox.id], WAIT_S)
    assert snapshot_of(fake_hub, sid) in fake_backend.snapshots, "the snapshot was finished and kept"
    (stopped,) = [e for e in events_of(fake_hub, sid, "sandbox_status") if e["status"] == "stopped"]
    assert stopped["detail"].startswith("idle:")


async def test_a_failed_snapshot_is_noted_redacted_and_the_prompt_stays_done(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    fake_backend.snapshot_error = RuntimeError(f"quota exceeded for token {SECRET}")
    first, sandbox = await prompt_done(fake_hub, fake_backend, sid, "one")

    (note,) = await until(lambda: events_of(fake_hub, sid, "error"), WAIT_S)
    assert note["code"] == "snapshot_failed"
    assert "quota exceeded" in note["message"] and SECRET not in note["message"]
    assert status(fake_hub, first) == "done"
    assert [c["success"] for c in completions(fake_hub, sid, first)] == [True]
    assert snapshot_of(fake_hub, sid) is None

    fake_backend.snapshot_error = None
    await prompt_done(fake_hub, fake_backend, sid, "two", prompt=2)  # on the same sandbox
    await until(lambda: snapshot_of(fake_hub, sid), WAIT_S)
    assert len(fake_backend.created) == 1


async def test_a_conversation_that_cannot_be_saved_is_noted_and_the_snapshot_kept(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    fake_backend.save_conversation_error = OSError("no space left")
    await prompt_done(fake_hub, fake_backend, sid, "one")
    (note,) = await until(lambda: events_of(fake_hub, sid, "error"), WAIT_S)
    assert note["code"] == "snapshot_failed" and "conversation could not be saved" in note["message"]
    assert snapshot_of(fake_hub, sid) in fake_backend.snapshots


async def test_the_next_sandbox_after_the_last_one_died_starts_from_the_latest_snapshot(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    _, sandbox = await prompt_done(fake_hub, fake_backend, sid, "one")
    first = await until(lambda: snapshot_of(fake_hub, sid), WAIT_S)
    await prompt_done(fake_hub, fake_backend, sid, "two", prompt=2)
    latest = await until(lambda: (s := snapshot_of(fake_hub, sid)) != first and s, WAIT_S)

    sandbox.die()
    await until(lambda: fake_hub.store.sandbox_record(sid)["sandbox_id"] is None, WAIT_S)
    third = send(fake_hub, sid, "three")
    fresh = await running_on(fake_backend, count=2)
    assert (fresh.spec.restore_from, fresh.spec.restore_kind) == (latest, "snapshot")
    assert fresh.prompts[0]["message_id"] == third
    assert not events_of(fake_hub, sid, "error")


async def test_a_gone_snapshot_falls_back_to_a_clone_with_a_note_and_the_prompt_runs(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    _, sandbox = await prompt_done(fake_hub, fake_backend, sid, "one")
    gone = await until(lambda: snapshot_of(fake_hub, sid), WAIT_S)
    fake_backend.expire_snapshot(gone)
    sandbox.die()
    await until(lambda: fake_hub.store.sandbox_record(sid)["sandbox_id"] is None, WAIT_S)

    second = send(fake_hub, sid, "two")
    fresh = await running_on(fake_backend, count=2)
    assert fresh.spec.restore_from is None, "a clone"
    (note,) = events_of(fake_hub, sid, "error")
    assert note["code"] == "snapshot_unavailable" and gone in note["message"]
    fresh.complete(second)
    await until(lambda: status(fake_hub, second) == "done", WAIT_S)
    # And the clone is snapshotted in turn.
    assert await until(lambda: snapshot_of(fake_hub, sid), WAIT_S) in fake_backend.snapshots


async def test_archiving_deletes_the_snapshot(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    _, sandbox = await prompt_done(fake_hub, fake_backend, sid, "one")
    snap = await until(lambda: snapshot_of(fake_hub, sid), WAIT_S)

    fake_hub.update_session(sid, {"archived": True}, ADA)
    await until(lambda: fake_backend.deleted_snapshots == [snap], WAIT_S)
    assert snapshot_of(fake_hub, sid) is None and fake_backend.terminated == [sandbox.id]

    fake_hub.update_session(sid, {"archived": False}, ADA)
    await prompt_done(fake_hub, fake_backend, sid, "two", count=2)
    assert fake_backend.created[1].spec.restore_from is None, "unarchived, it starts from a clone"


async def test_archiving_during_a_snapshot_waits_for_it_then_deletes_it(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    fake_backend.snapshot_gate = asyncio.Event()
    _, sandbox = await prompt_done(fake_hub, fake_backend, sid, "one")
    await until(lambda: fake_backend.snapshot_calls, WAIT_S)

    fake_hub.update_session(sid, {"archived": True}, ADA)
    await settle()
    assert fake_backend.terminated == [], "not ended while its snapshot is taken"

    fake_backend.snapshot_gate.set()
    await until(lambda: fake_backend.terminated == [sandbox.id], WAIT_S)
    await until(lambda: not fake_backend.snapshots and snapshot_of(fake_hub, sid) is None, WAIT_S)
    assert len(fake_backend.deleted_snapshots) == 1
    assert len(fake_backend.snapshot_calls) == 1


async def test_a_restore_that_fails_forgets_only_that_snapshot_not_a_newer_one(memory_store, fake_backend):
    """A snapshot stored while the restore of an older one was failing is kept."""
    from jupyter_cloudws.backends.base import SnapshotGone

    fake_backend.supports_snapshot = True  # type: ignore[misc]
    hub = make_hub(memory_store, fake_backend)
    sid = new_session(hub)
    memory_store.update_session(sid, snapshot_id="snap-old")
    original = fake_backend.create

    async def newer_stored_then_gone(spec, progress=None):
        if spec.restore_from == "snap-old":
            memory_store.update_session(sid, snapshot_id="snap-new")
            raise SnapshotGone("snap-old expired")
        return await original(spec, progress)

    fake_backend.create = newer_stored_then_gone
    try:
        send(hub, sid, "go")
        await fake_backend.wait_for_sandbox(1)
        assert memory_store.sandbox_record(sid)["snapshot_id"] == "snap-new"
    finally:
        await hub.close()


async def test_a_sandbox_that_cannot_start_from_its_snapshot_drops_it_and_the_next_prompt_clones(fake_hub, fake_backend):
    """The snapshot restores but the work tree in it cannot be used (the daemon's start-up
    fails): without dropping it, every later sandbox would start from it and fail the same way."""
    sid = new_session(fake_hub)
    _, first = await prompt_done(fake_hub, fake_backend, sid, "one")
    snapshot = await until(lambda: snapshot_of(fake_hub, sid), WAIT_S)
    first.die()  # or an idle stop, or its lifetime: the next prompt starts from the snapshot
    await until(lambda: fake_hub.store.sandbox_record(sid)["sandbox_id"] is None, WAIT_S)

    stuck = send(fake_hub, sid, "two")
    restored = await fake_backend.wait_for_sandbox(2)
    assert restored.spec.restore_from == snapshot
    queued = send(fake_hub, sid, "three")
    restored.emit(SandboxStatusEvent("failed", "git checkout failed: your local changes would be overwritten"))
    await until(lambda: status(fake_hub, stuck) == "failed", WAIT_S)
    await until(lambda: restored.id in fake_backend.terminated, WAIT_S)
    assert snapshot_of(fake_hub, sid) is None and snapshot in fake_backend.deleted_snapshots
    (note,) = events_of(fake_hub, sid, "error")
    assert note["code"] == "snapshot_unusable" and "git checkout failed" in note["message"]

    fresh = await fake_backend.wait_for_sandbox(3)
    assert fresh.spec.restore_from is None, "the queued prompt gets a sandbox from a clone"
    assert status(fake_hub, queued) in ("queued", "running")
