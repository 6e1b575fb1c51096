"""The hub holds when a sandbox or its backend misbehaves: interleavings of spawn, attach, loss
and stop staged step by step with the fake backend (no sleeps, no real sandboxes)."""

from __future__ import annotations

import asyncio

from hub_fakes import ADA, WAIT_S, completions, events_of, make_hub, new_session, running_on, send, status

from jupyter_cloudws.backends.base import Liveness, SandboxGone
from jupyter_cloudws.runner import UNKNOWN_GIVE_UP
from jupyter_cloudws.testing.fake_backend import settle, until

# -- a prompt never stays running without a bridge or a mend under way ------------------------


async def test_a_crash_while_mending_a_lost_bridge_fails_the_prompt_and_the_queue_moves_on(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    first, second = send(fake_hub, sid, "one"), send(fake_hub, sid, "two")
    sandbox = await running_on(fake_backend)

    fake_backend.exit_reason_error = RuntimeError("the backend API is down")  # raised while reporting it dead
    sandbox.die()

    fresh = await running_on(fake_backend, count=2)
    assert fresh.prompts[0]["message_id"] == second, "the queue went on, on a fresh sandbox"
    assert status(fake_hub, first) == "failed"
    (done,) = completions(fake_hub, sid, first)
    assert "the sandbox died" in done["error"]


async def test_an_unexpected_error_on_every_reattach_still_ends_the_prompt(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    first = send(fake_hub, sid, "one")
    sandbox = await running_on(fake_backend)

    fake_backend.connect_error = RuntimeError("a bug in the backend")  # alive, but every reattach raises
    sandbox.hang_up()

    await until(lambda: status(fake_hub, first) != "running", WAIT_S)
    assert status(fake_hub, first) == "failed"
    assert fake_backend.terminated == [sandbox.id], "alive but unreachable after every attempt: ended"
    fake_backend.connect_error = None
    second = send(fake_hub, sid, "two")
    fresh = await running_on(fake_backend, count=2)
    assert fresh.prompts[0]["message_id"] == second


async def test_a_terminate_that_raises_during_archive_still_ends_the_prompt(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    first = send(fake_hub, sid, "a long job")
    await running_on(fake_backend)

    fake_backend.terminate_error = RuntimeError("cannot reach the backend")
    fake_hub.update_session(sid, {"archived": True}, ADA)

    await until(lambda: status(fake_hub, first) != "running", WAIT_S)
    (done,) = completions(fake_hub, sid, first)
    assert done["success"] is False and done["interrupted"] is True
    assert any(e["code"] == "terminate_failed" for e in events_of(fake_hub, sid, "error"))
    fake_backend.terminate_error = None
    fake_hub.update_session(sid, {"archived": False}, ADA)
    second = send(fake_hub, sid, "a short job")
    fresh = await running_on(fake_backend, count=2)
    assert fresh.prompts[0]["message_id"] == second, "the queue is not stalled"


# -- one completion per prompt -----------------------------------------------------------------


async def test_an_attach_timeout_after_a_restart_does_not_complete_a_prompt_the_sandbox_completes(memory_store, fake_backend):
    first_hub = make_hub(memory_store, fake_backend)
    sid = new_session(first_hub)
    prompt = send(first_hub, sid, "work on")
    sandbox = await running_on(fake_backend)
    await first_hub.close()  # the server goes; the sandbox keeps working

    sandbox.answer_attach = False  # busy: the next server's first attach times out
    fake_hub = make_hub(memory_store, fake_backend, attach_timeout_s=0.05)
    try:
        await fake_hub.start()
        await until(lambda: any(c.closed and c.ops_named("attach") for c in sandbox.connections[1:]), WAIT_S)
        sandbox.answer_attach = True
        sandbox.complete(prompt)  # it finished the prompt all along

        await until(lambda: memory_store.sandbox_record(sid)["sandbox_cursor"] >= sandbox.last_seq, WAIT_S)
        await settle()
        done = completions(fake_hub, sid, prompt)
        assert [d["success"] for d in done] == [True], "completed once, by the sandbox"
        assert status(fake_hub, prompt) == "done"
        assert fake_backend.terminated == []
    finally:
        await fake_hub.close()


async def test_a_hub_error_after_sending_does_not_complete_a_prompt_the_sandbox_completes(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    fake_backend.write_faults["prompt"] = RuntimeError("a bug after the prompt went out")
    prompt = send(fake_hub, sid, "go")
    sandbox = await running_on(fake_backend)

    await until(lambda: status(fake_hub, prompt) == "running", WAIT_S)
    sandbox.complete(prompt)
    await until(lambda: status(fake_hub, prompt) != "running", WAIT_S)
    await settle()
    assert [d["success"] for d in completions(fake_hub, sid, prompt)] == [True]
    assert [p["message_id"] for p in sandbox.prompts] == [prompt], "given to the sandbox once"


async def test_a_sandbox_completing_a_prompt_that_is_not_open_is_recorded_as_a_note(fake_hub, fake_backend):
    sid, other = new_session(fake_hub), new_session(fake_hub)
    theirs = send(fake_hub, other, "theirs")
    ours = send(fake_hub, sid, "ours")
    await running_on(fake_backend, count=1)
    sandbox = await running_on(fake_backend, count=2)
    mine = sandbox if sandbox.spec.session_id == sid else fake_backend.created[0]

    mine.complete(theirs)  # a hostile sandbox claims another session's prompt
    mine.complete(ours)
    mine.complete(ours)  # and its own twice
    await until(lambda: status(fake_hub, ours) == "done", WAIT_S)
    await settle()
    assert status(fake_hub, theirs) == "running"
    assert completions(fake_hub, other, theirs) == []
    assert len(completions(fake_hub, sid, ours)) == 1
    assert [e["code"] for e in events_of(fake_hub, sid, "error")] == ["stray_completion", "stray_completion"]


# -- a prompt that never went out gets a sandbox -------------------------------------------------


async def test_a_queued_prompt_is_not_failed_with_a_sandbox_that_died_before_it_was_sent(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    fake_hub.warm_up(sid, ADA)
    old = await asyncio.wait_for(fake_backend.wait_for_sandbox(), WAIT_S)
    runner = fake_hub.runner(sid)
    await until(lambda: runner.bridge is not None and runner._caught_up.is_set(), WAIT_S)

    old.die()
    prompt = send(fake_hub, sid, "go")  # before the hub has noticed

    fresh = await running_on(fake_backend, count=2)
    assert fresh.prompts[0]["message_id"] == prompt
    assert status(fake_hub, prompt) == "running"
    assert completions(fake_hub, sid, prompt) == []
    assert old.prompts == []


# -- unknown never kills -----------------------------------------------------------------------


async def test_a_sandbox_whose_state_is_unknown_is_neither_ended_nor_replaced(fake_hub, fake_backend, memory_store):
    sid = new_session(fake_hub)
    first, second = send(fake_hub, sid, "one"), send(fake_hub, sid, "two")
    sandbox = await running_on(fake_backend)

    sandbox.liveness = Liveness.UNKNOWN  # the backend cannot answer "is it alive?"
    sandbox.hang_up()

    await until(lambda: status(fake_hub, second) != "queued", WAIT_S)
    for prompt in (first, second):
        (done,) = completions(fake_hub, sid, prompt)
        assert done["error"] == UNKNOWN_GIVE_UP
    assert fake_backend.terminated == [] and len(fake_backend.created) == 1
    assert memory_store.sandbox_record(sid)["sandbox_id"] == sandbox.id, "the sandbox id is kept"
    assert not [e for e in events_of(fake_hub, sid, "sandbox_status") if e["status"] == "failed"]

    sandbox.liveness = Liveness.ALIVE  # the backend answers again: the same sandbox goes on
    third = send(fake_hub, sid, "three")
    got = await asyncio.wait_for(sandbox.wait_for_prompt(2), WAIT_S)
    assert got["message_id"] == third and len(fake_backend.created) == 1


# -- memory --------------------------------------------------------------------------------------


async def test_runners_of_sessions_at_rest_are_let_go(fake_hub, fake_backend):
    sids = [new_session(fake_hub) for _ in range(20)]
    for sid in sids:
        _, unsubscribe = fake_hub.subscribe(sid, None, lambda frame: None, ADA)
        assert unsubscribe is not None
        unsubscribe()
    assert fake_hub._runners == {}, "nothing to do, nobody listening: nothing kept"
    fake_hub.warm_up(sids[0], ADA)
    await until(lambda: fake_backend.created and fake_hub.runner(sids[0]).bridge is not None, WAIT_S)
    assert list(fake_hub._runners) == [sids[0]], "only the session with a sandbox link is kept"

    prompt = send(fake_hub, sids[0], "go")
    sandbox = await running_on(fake_backend)
    sandbox.complete(prompt)
    await until(lambda: status(fake_hub, prompt) == "done", WAIT_S)
    fake_hub.update_session(sids[0], {"archived": True}, ADA)  # ends its sandbox
    await until(lambda: not fake_hub._runners, WAIT_S)
    assert fake_backend.terminated == [sandbox.id]


async def test_a_prompt_whose_fresh_sandboxes_keep_dying_fails_after_two(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    fake_backend.connect_error = SandboxGone("the daemon exited at once")  # every new sandbox dies
    original_create = fake_backend.create

    async def create_then_die(spec, progress=None):
        sandbox_id = await original_create(spec, progress)
        fake_backend.sandboxes[sandbox_id].die()
        return sandbox_id

    fake_backend.create = create_then_die
    prompt = send(fake_hub, sid, "go")
    await until(lambda: status(fake_hub, prompt) == "failed", WAIT_S)
    assert len(fake_backend.created) == 2
    (done,) = completions(fake_hub, sid, prompt)
    assert done["error"] == "no sandbox: the daemon exited at once"


async def test_a_completion_and_its_prompt_status_are_stored_together_or_not_at_all(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    first = send(fake_hub, sid, "one")
    sandbox = await running_on(fake_backend)
    store = fake_hub.store
    real_set_status = store.set_prompt_status

    def crash(prompt_id: str, status: str) -> None:  # the server dies between the two writes
        raise RuntimeError("killed")

    store.set_prompt_status = crash  # type: ignore[method-assign]
    sandbox.complete(first)
    await settle()
    store.set_prompt_status = real_set_status  # type: ignore[method-assign]
    assert (status(fake_hub, first), completions(fake_hub, sid, first)) == ("running", []), (
        "neither was stored: the sandbox's replay delivers the completion again"
    )
