"""Contract: a session's sandbox starts, answers prompts with commits on its branch, and stops a
long command on request, on every backend (through a shared real server per backend)."""

from __future__ import annotations

import subprocess

from contract_helpers import Case, status_is

from jupyter_cloudws.testing.fake_anthropic import text, tool_use


def remote_git(case: Case, name: str, *args: str) -> str:
    """git on the HTTP server's bare repository ``name`` (what anyone cloning would see)."""
    bare = str(case.git.path_for(name))
    return subprocess.run(["git", "--git-dir", bare, *args], check=True, capture_output=True, text=True).stdout


def test_spawn_runs_the_first_prompt_and_reports_its_steps(case: Case, shared_server, hub_of) -> None:
    ask = case.phrase("make the greeting file")
    case.fake.on(ask, tool_use("Bash", {"command": "echo hello > greeting.txt"}), text("Made **greeting.txt**."))
    repo = case.git.make_remote(f"spawn-{case.name}")
    hub = hub_of(shared_server)
    sid = hub.new_session(repo)

    done = hub.wait_complete(sid, hub.prompt(sid, ask))

    assert done["success"] is True
    events = hub.events(sid)
    calls = [(e["tool"], e["status"]) for e in events if e["type"] == "tool_call"]
    assert calls == [("Bash", "running"), ("Bash", "completed")]
    assert [e["text"] for e in events if e["type"] == "assistant_text"] == ["Made **greeting.txt**."]
    starts = [e for e in events if e["type"] == "sandbox_progress" and e["step"] == "start"]
    assert [e["state"] for e in starts] == ["running", "done"], starts
    assert starts[-1]["detail"], "the start step names the sandbox it started"
    ready = next(e for e in events if status_is("ready")(e))
    assert starts[-1]["seq"] < ready["seq"], "the sandbox was started before it was ready"
    assert [e["status"] for e in events if e["type"] == "sandbox_status"].count("spawning") == 1
    session = hub.session(sid)
    assert (session["status"], session["sandbox_status"]) == ("idle", "ready")


def test_a_prompt_lands_as_a_commit_on_the_session_branch(case: Case, shared_server, hub_of) -> None:
    ask = case.phrase("write the notes file")
    case.fake.on(ask, tool_use("Write", {"file_path": "notes.md", "content": "# Notes\n\nfrom the agent\n"}),
                 text("Wrote the notes."))  # fmt: skip
    name = f"prompt-{case.name}"
    repo = case.git.make_remote(name)
    hub = hub_of(shared_server)
    sid = hub.new_session(repo)
    branch = hub.session(sid)["branch"]

    message_id = hub.prompt(sid, ask)
    assert hub.wait_complete(sid, message_id)["success"] is True

    (pushed,) = [e for e in hub.events(sid) if e["type"] == "git" and e["message_id"] == message_id]
    assert pushed["pushed"] is True and pushed["error"] is None, pushed
    assert remote_git(case, name, "rev-parse", branch).strip() == pushed["sha"], "the remote has the commit"
    assert remote_git(case, name, "show", f"{branch}:notes.md") == "# Notes\n\nfrom the agent\n"
    assert ask in remote_git(case, name, "log", "-1", "--format=%B", branch), "the prompt is the commit's message"
    assert remote_git(case, name, "rev-list", "--count", f"main..{branch}").strip() == "1"


# Counts the processes in the sandbox running the long command, through /proc (no ps in a slim image).
COUNT_SLEEPS = "grep -l 'sleep 6[0]' /proc/[0-9]*/cmdline 2>/dev/null | wc -l"


def test_stop_interrupts_a_long_command_and_the_session_goes_on(case: Case, shared_server, hub_of) -> None:
    long_ask, check_ask = case.phrase("wait a minute"), case.phrase("count the sleepers")
    # Claude Code refuses a bare `sleep 60`, so the minute-long command does a little more.
    case.fake.on(long_ask, tool_use("Bash", {"command": "echo waiting && sleep 60 && echo waited", "timeout": 120000}),
                 text("Waited."))  # fmt: skip
    case.fake.on(check_ask, tool_use("Bash", {"command": COUNT_SLEEPS}), text("Counted."))
    hub = hub_of(shared_server)
    sid = hub.new_session(case.git.make_remote(f"stop-{case.name}"))
    long_id = hub.prompt(sid, long_ask)
    hub.wait_for(sid, lambda e: e["type"] == "tool_call" and e["status"] == "running")

    response = hub.client.post(f"/sessions/{sid}/stop")
    assert response.status_code == 202, response.text
    done = hub.wait_complete(sid, long_id, timeout_s=30)
    assert (done["success"], done["interrupted"]) == (False, True)
    assert "Waited." not in [e["text"] for e in hub.events(sid) if e["type"] == "assistant_text"]

    check_id = hub.prompt(sid, check_ask)
    assert hub.wait_complete(sid, check_id)["success"] is True
    events = hub.events(sid)
    (counted,) = [e for e in events if e["type"] == "tool_call" and e["message_id"] == check_id
                  and e["status"] == "completed"]  # fmt: skip
    assert counted["output"].strip() == "0", f"the interrupted command still runs: {counted['output']!r}"
    assert [e["status"] for e in events if e["type"] == "sandbox_status"].count("spawning") == 1, "the same sandbox"
    assert not [e for e in events if status_is("failed")(e)], "a stop is no failure"
