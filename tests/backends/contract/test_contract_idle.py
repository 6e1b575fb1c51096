"""Contract: an idle sandbox ends, and the next prompt carries on from where the session was,
the agent's conversation included (from a snapshot on backends that take them)."""

from __future__ import annotations

from contract_helpers import IDLE_TIMEOUT_S, Case, sandbox_id_of, status_is, wait_until

from jupyter_cloudws.backends.base import Liveness
from jupyter_cloudws.testing.fake_anthropic import text, tool_use


def test_an_idle_sandbox_ends_and_the_backend_says_it_is_dead(case: Case, idle_server, hub_of) -> None:
    ask = case.phrase("rest a little")
    # A running prompt is never idle: while the command runs, the sandbox is there to be seen.
    case.fake.on(ask, tool_use("Bash", {"command": "echo resting && sleep 2 && echo rested"}), text("Rested."))
    hub = hub_of(idle_server)
    sid = hub.new_session(case.git.make_remote(f"idle-{case.name}"))
    message_id = hub.prompt(sid, ask)
    hub.wait_for(sid, lambda e: e["type"] == "tool_call" and e["status"] == "running")
    sandbox_id = sandbox_id_of(idle_server, sid)
    assert sandbox_id and case.liveness(idle_server, sandbox_id) is Liveness.ALIVE
    assert hub.wait_complete(sid, message_id)["success"] is True

    events = hub.wait_for(sid, status_is("stopped"), timeout_s=IDLE_TIMEOUT_S + 30)
    stopped = next(e for e in events if status_is("stopped")(e))
    assert stopped["detail"].startswith(f"idle: no prompt for {IDLE_TIMEOUT_S:g} s"), stopped
    wait_until(lambda: case.liveness(idle_server, sandbox_id) is Liveness.DEAD, "the sandbox's end")
    session = hub.session(sid)
    assert (session["status"], session["sandbox_status"]) == ("idle", "stopped")
    assert not [e for e in events if status_is("failed")(e)], "an idle stop is no failure"


def test_after_an_idle_stop_the_next_prompt_resumes_the_conversation(case: Case, idle_server, hub_of) -> None:
    remember, recall = case.phrase("remember the word pelican"), case.phrase("which word was it")
    case.fake.on(remember, text("I will remember **pelican**."))
    case.fake.on(recall, text("The word was pelican."))
    hub = hub_of(idle_server)
    sid = hub.new_session(case.git.make_remote(f"snapshot-{case.name}"))
    assert hub.wait_complete(sid, hub.prompt(sid, remember))["success"] is True
    hub.wait_for(sid, status_is("stopped"), timeout_s=IDLE_TIMEOUT_S + 30)
    first_seq = hub.events(sid)[-1]["seq"]

    assert hub.wait_complete(sid, hub.prompt(sid, recall))["success"] is True

    sent = [r["body"]["messages"] for r in case.fake.main_requests() if recall in repr(r["body"]["messages"])]
    assert sent and remember in repr(sent[-1]) and "I will remember **pelican**." in repr(sent[-1]), (
        "the earlier turn went back to the model"
    )
    later = [e for e in hub.events(sid) if e["seq"] > first_seq]
    assert [e["status"] for e in later if e["type"] == "sandbox_status"][0] == "spawning", "a new sandbox"
    steps = [(e["step"], e["state"], e["detail"]) for e in later if e["type"] == "sandbox_progress"]
    notes = [e for e in later if e["type"] == "error"]
    if case.backend_class.supports_snapshot:
        start = next(detail for step, state, detail in steps if step == "start" and state == "running")
        assert start.startswith("from snapshot "), steps
        assert "clone" not in [step for step, _, _ in steps], f"restored, not cloned: {steps}"
        assert ("restore", "done") in [(step, state) for step, state, _ in steps], steps
    assert not notes, f"the session resumed without a note: {notes}"
