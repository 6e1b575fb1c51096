"""Contract: sandboxes outlive the server. A restarted server reattaches to the sandbox that is
still working and loses no event; one no session claims is ended when a server starts."""

from __future__ import annotations

import sqlite3

from contract_helpers import Case, completes, data_dir, sandbox_id_of, status_is, wait_until

from jupyter_cloudws.backends.base import Liveness
from jupyter_cloudws.testing.fake_anthropic import latest_human_text, text, tool_use
from jupyter_cloudws.testing.server import ServerProcess


def test_a_server_killed_mid_prompt_reattaches_and_the_prompt_completes_once(
    case: Case, restartable_server: ServerProcess, hub_of
) -> None:
    ask = case.phrase("run the slow job")
    command = "echo started > progress.txt && sleep 3 && echo finished >> progress.txt"
    case.fake.on(ask, tool_use("Bash", {"command": command, "timeout": 60000}), text("The slow job is done."))
    server = restartable_server
    hub = hub_of(server)
    sid = hub.new_session(case.git.make_remote(f"restart-{case.name}"))
    message_id = hub.prompt(sid, ask)
    hub.wait_for(sid, lambda e: e["type"] == "tool_call" and e["status"] == "running")
    sandbox_id = sandbox_id_of(server, sid)
    server.kill()  # SIGKILL while the command runs

    server.start(port=server.port)
    hub = hub_of(server)
    events = hub.wait_for(sid, completes(message_id))

    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "no gap and no duplicate in the session's log"
    calls = [(e["call_id"], e["status"]) for e in events if e["type"] == "tool_call"]
    assert len(calls) == 2 and calls[0][0] == calls[1][0] and calls[1][1] == "completed", calls
    types = [e["type"] for e in events]
    assert types.count("user_message") == 1 and types.count("execution_complete") == 1
    assert [e["text"] for e in events if e["type"] == "assistant_text"] == ["The slow job is done."]
    assert events[-1]["type"] == "execution_complete" and events[-1]["success"] is True
    assert sandbox_id_of(server, sid) == sandbox_id, "the same sandbox finished the work"
    assert [e["status"] for e in events if e["type"] == "sandbox_status"].count("spawning") == 1
    # The model was asked once, plus the tool round trip: the prompt was not run again.
    asked = [latest_human_text(r["body"]["messages"]) for r in case.fake.main_requests()]
    assert [k for human, k in asked if ask in human] == [0, 1]


def forget_sandbox(server_db: str, session_id: str) -> None:
    """As if the session had never known its sandbox (a row lost, a crash between create and
    save): the sandbox now belongs to no session."""
    with sqlite3.connect(server_db) as db:
        db.execute("UPDATE sessions SET sandbox_id = NULL, sandbox_status = 'stopped' WHERE id = ?", (session_id,))


def test_a_sandbox_no_session_claims_is_ended_when_the_server_starts(
    case: Case, restartable_server: ServerProcess, hub_of
) -> None:
    ask = case.phrase("say hello")
    case.fake.on(ask, text("Hello!"))
    server = restartable_server
    hub = hub_of(server)
    repo = case.git.make_remote(f"orphans-{case.name}")
    kept, lost = hub.new_session(repo), hub.new_session(repo)
    prompts = {sid: hub.prompt(sid, ask) for sid in (kept, lost)}  # both sandboxes start at once
    for sid, message_id in prompts.items():
        assert hub.wait_complete(sid, message_id)["success"] is True
    kept_box, lost_box = sandbox_id_of(server, kept), sandbox_id_of(server, lost)
    assert kept_box and lost_box and kept_box != lost_box
    server.kill()
    forget_sandbox(str(data_dir(server) / "cloudws.sqlite"), lost)
    assert case.liveness(server, lost_box) is Liveness.ALIVE, "sandboxes outlive their server"

    server.start(port=server.port)
    wait_until(lambda: case.liveness(server, lost_box) is Liveness.DEAD, "the orphan's end")
    hub = hub_of(server)
    # The claimed one was left alone: the restarted server reattached to it and it still answers.
    again = case.phrase("say hello")
    case.fake.on(again, text("Hello again!"))
    assert hub.wait_complete(kept, hub.prompt(kept, again))["success"] is True
    assert sandbox_id_of(server, kept) == kept_box and case.liveness(server, kept_box) is Liveness.ALIVE
    assert not [e for e in hub.events(kept) if status_is("failed")(e)]
