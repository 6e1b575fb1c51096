"""A user's session, end to end: a real jupyter-server with the extension, the real Claude Code
CLI in a local sandbox against the scripted fake API, and a bare git repository on disk."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from support import completed, crash_daemon, eventually, git, sandbox_commands

from cloudws_sandbox.normalize import DEFAULT_MAX_INPUT_CHARS
from jupyter_cloudws.testing.fake_anthropic import latest_human_text, text, tool_use, turn


def live_events(frames: list[dict]) -> list[dict]:
    return [f["event"] for f in frames if f["type"] == "event"]


async def test_a_prompt_streams_tool_calls_and_text_and_commits_the_work(
    api, open_socket, make_repo, fake_anthropic
):
    fake_anthropic.on(
        "make a greeting file",
        tool_use("Bash", {"command": "echo 'hello from claude' > greeting.txt"}),
        turn(text("I created **greeting.txt** with a friendly line.\n\n| file | lines |\n|---|---|\n| greeting.txt | 1 |"),
             delay_s=0.02),
    )  # fmt: skip
    repo = make_repo()
    session = await api.new_session(repo, title="Greeting")
    assert session["branch"] == f"cloudws/{session['id'][:8]}"
    assert (session["status"], session["sandbox_status"], session["title"]) == ("idle", "stopped", "Greeting")

    sock = await open_socket(session["id"])
    await sock.send({"type": "subscribe"})
    subscribed = await sock.recv()
    assert subscribed["type"] == "subscribed" and subscribed["events"] == [] and subscribed["has_more"] is False

    await sock.send({"type": "prompt", "text": "Please make a greeting file", "client_request_id": "req-1"})
    accepted = await sock.until(lambda f: f["type"] == "prompt_accepted")
    assert accepted["client_request_id"] == "req-1"
    message_id = accepted["message_id"]
    await sock.until(completed(message_id))

    events = live_events(sock.frames)
    types = [e["type"] for e in events]
    assert types[0] == "user_message" and events[0]["text"] == "Please make a greeting file"
    statuses = [e["status"] for e in events if e["type"] == "sandbox_status"]
    assert statuses == ["spawning", "cloning", "ready"]
    calls = [e for e in events if e["type"] == "tool_call"]
    assert [(c["tool"], c["status"]) for c in calls] == [("Bash", "running"), ("Bash", "completed")]
    assert calls[0]["call_id"] == calls[1]["call_id"]
    assert calls[1]["input"]["command"].startswith("echo 'hello from claude'")
    texts = [e for e in events if e["type"] == "assistant_text"]
    assert len(texts) == 1 and texts[0]["text"].startswith("I created **greeting.txt**")
    # The text streamed in fragments before its final event, and the fragments add up to it.
    deltas = [f for f in sock.frames if f["type"] == "delta" and f["index"] == texts[0]["index"]]
    assert len(deltas) > 3
    assert "".join(d["text"] for d in deltas) == texts[0]["text"]
    git_event = next(e for e in events if e["type"] == "git")
    assert git_event["pushed"] and git_event["branch"] == session["branch"]
    done = events[-1]
    assert done["type"] == "execution_complete" and done["success"] is True and done["cost_usd"] is not None
    assert done["usage"]["output_tokens"] > 0
    assert types.index("git") < types.index("execution_complete")

    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "every event once, in order, none missing"
    assert await api.events(session["id"]) == events, "the REST log equals what was streamed"

    # The work is on the session branch in the user's repository, authored by the hub's user.
    assert git("--git-dir", str(repo), "show", f"{session['branch']}:greeting.txt") == "hello from claude"
    log = git("--git-dir", str(repo), "log", "--format=%s|%an|%ae", session["branch"])
    subject, name, email = log.splitlines()[0].split("|")
    assert subject == "Please make a greeting file"
    # A shared token names no user: the commit is signed as configured for the server's user.
    assert (name, email) == ("Ada Lovelace", "ada@example.test")
    assert git("--git-dir", str(repo), "rev-parse", "main") != git("--git-dir", str(repo), "rev-parse", session["branch"])

    code, after = await api.get(f"sessions/{session['id']}")
    assert (after["status"], after["sandbox_status"]) == ("idle", "ready")
    assert not fake_anthropic.errors


async def test_a_follow_up_prompt_keeps_the_conversation(api, make_repo, fake_anthropic):
    fake_anthropic.on("remember the word", text("I will remember **pelican**."))
    fake_anthropic.on("which word", text("The word was pelican."))
    session = await api.new_session(make_repo())
    first = await api.prompt(session["id"], "Please remember the word pelican")
    await api.wait_until_complete(session["id"], first["message_id"])
    second = await api.prompt(session["id"], "Now: which word did I ask you to remember?")
    done = await api.wait_until_complete(session["id"], second["message_id"])
    assert done["success"]

    last = fake_anthropic.main_requests()[-1]["body"]["messages"]
    transcript = repr(last)
    assert "Please remember the word pelican" in transcript
    assert "I will remember **pelican**." in transcript, "the first answer went back to the model"
    assert "which word did I ask you to remember" in transcript
    # One long-lived agent: the second prompt did not start a second sandbox.
    spawns = [e for e in await api.events(session["id"]) if e.get("status") == "spawning"]
    assert len(spawns) == 1


async def test_stop_ends_a_long_command_in_seconds_and_the_session_goes_on(
    api, make_repo, fake_anthropic, cloudws_data_dir
):
    # Claude Code refuses a standalone `sleep 60`, so the minute-long command does a little more.
    command = "echo waiting && sleep 60 && echo waited"
    fake_anthropic.on("wait a minute", tool_use("Bash", {"command": command, "timeout": 120000}), text("Waited."))
    fake_anthropic.on("say hi", text("Hi!"))
    session = await api.new_session(make_repo())
    long = await api.prompt(session["id"], "Please wait a minute")
    await api.wait_for_event(session["id"], lambda e: e["type"] == "tool_call" and e["status"] == "running")
    assert await eventually(lambda: _sleep_60_running(cloudws_data_dir), 5), "the command runs"

    stopped_at = time.monotonic()
    code, body = await api.post(f"sessions/{session['id']}/stop")
    assert code == 202
    done = await api.wait_until_complete(session["id"], long["message_id"], timeout_s=30)
    elapsed_s = time.monotonic() - stopped_at
    assert elapsed_s < 15, f"Stop took {elapsed_s:.1f} s"
    assert done["success"] is False and done["interrupted"] is True
    assert not _sleep_60_running(cloudws_data_dir), "the interrupted command is still running"

    nxt = await api.prompt(session["id"], "Now say hi")
    after = await api.wait_until_complete(session["id"], nxt["message_id"])
    assert after["success"] is True
    texts = [e["text"] for e in await api.events(session["id"]) if e["type"] == "assistant_text"]
    assert texts[-1] == "Hi!"


def _sleep_60_running(data_dir: Path) -> bool:
    """Whether this test's sandbox runs the minute-long sleep (other tests' sandboxes aside)."""
    return "sleep 60" in sandbox_commands(data_dir)



async def test_the_same_client_request_id_twice_runs_once(api, make_repo, fake_anthropic):
    fake_anthropic.on("count me", text("Counted."))
    session = await api.new_session(make_repo())
    first = await api.prompt(session["id"], "count me once", client_request_id="retry-42")
    again = await api.prompt(session["id"], "count me once", client_request_id="retry-42")
    assert again["message_id"] == first["message_id"] and again["duplicate"] is True
    await api.wait_until_complete(session["id"], first["message_id"])
    await asyncio.sleep(0.5)

    events = await api.events(session["id"])
    assert [e["type"] for e in events].count("user_message") == 1
    assert [e["type"] for e in events].count("execution_complete") == 1
    asked = [r for r in fake_anthropic.main_requests() if "count me once" in repr(r["body"]["messages"])]
    assert len(asked) == 1, "the model saw the prompt once"


async def test_prompts_queue_and_run_one_at_a_time_in_order(api, make_repo, fake_anthropic):
    for n in (1, 2, 3):
        fake_anthropic.on(f"step {n}", tool_use("Bash", {"command": f"echo {n} >> steps.txt && sleep 0.3"}),
                          text(f"Step {n} done."))  # fmt: skip
    repo = make_repo()
    session = await api.new_session(repo)
    ids = [(await api.prompt(session["id"], f"do step {n}"))["message_id"] for n in (1, 2, 3)]
    await api.wait_until_complete(session["id"], ids[-1])

    events = await api.events(session["id"])
    order = [e["message_id"] for e in events if e["type"] in ("tool_call", "assistant_text", "execution_complete")]
    # Each prompt's work is contiguous: the next starts only after the previous completed.
    assert order == sorted(order, key=ids.index)
    assert all(e["success"] for e in events if e["type"] == "execution_complete")
    assert git("--git-dir", str(repo), "show", f"{session['branch']}:steps.txt").split() == ["1", "2", "3"]
    assert len(git("--git-dir", str(repo), "log", "--format=%H", f"main..{session['branch']}").split()) == 3


async def test_a_dead_sandbox_is_reported_and_the_next_prompt_starts_afresh_on_the_same_branch(
    api, make_repo, fake_anthropic, cloudws_data_dir: Path
):
    fake_anthropic.on("first file", tool_use("Bash", {"command": "echo one > one.txt"}), text("One."))
    fake_anthropic.on("second file", tool_use("Bash", {"command": "echo two > two.txt"}), text("Two."))
    repo = make_repo()
    session = await api.new_session(repo)
    first = await api.prompt(session["id"], "make the first file")
    await api.wait_until_complete(session["id"], first["message_id"])

    (pid_file,) = (cloudws_data_dir / "sandboxes").glob("*/daemon.pid")
    crash_daemon(pid_file.parent)
    failed = await api.wait_for_event(
        session["id"], lambda e: e["type"] == "sandbox_status" and e["status"] == "failed", timeout_s=30
    )
    assert "exited" in failed["detail"]
    code, now = await api.get(f"sessions/{session['id']}")
    assert now["sandbox_status"] == "failed"

    second = await api.prompt(session["id"], "make the second file")
    done = await api.wait_until_complete(session["id"], second["message_id"])
    assert done["success"] is True
    spawned = [e for e in await api.events(session["id"]) if e["type"] == "sandbox_status" and e["status"] == "spawning"]
    assert len(spawned) == 2, "a fresh sandbox replaced the dead one"
    assert len(list((cloudws_data_dir / "sandboxes").glob("*/daemon.pid"))) == 1, "the dead one's folder is gone"
    files = git("--git-dir", str(repo), "ls-tree", "--name-only", session["branch"]).split()
    assert {"one.txt", "two.txt"} <= set(files), "the fresh sandbox continued the session branch"


async def test_archiving_a_session_stops_its_sandbox_and_keeps_its_history(
    api, make_repo, fake_anthropic, cloudws_data_dir: Path
):
    fake_anthropic.on("hello", text("Hello!"))
    session = await api.new_session(make_repo(), title="To archive")
    first = await api.prompt(session["id"], "hello")
    await api.wait_until_complete(session["id"], first["message_id"])
    (pid_file,) = (cloudws_data_dir / "sandboxes").glob("*/daemon.pid")
    pid = pid_file.read_text()

    code, archived = await api.patch(f"sessions/{session['id']}", {"archived": True})
    assert code == 200 and archived["archived"] is True
    await api.wait_for_event(session["id"], lambda e: e["type"] == "sandbox_status" and e["status"] == "stopped")
    # The daemon logs "stopped" as it shuts down, a moment before its process is gone.
    gone = await eventually(lambda: not Path(f"/proc/{pid}").exists(), 5, interval_s=0.05)
    assert gone, "the sandbox process ended"
    assert await eventually(lambda: not pid_file.parent.exists(), 5), "the sandbox's disk was deleted"
    assert list((cloudws_data_dir / "sandboxes").iterdir()) == [], "no socket or folder is left"
    events = await api.events(session["id"])
    assert not [e for e in events if e.get("status") == "failed"], "a deliberate stop is no failure"
    assert [e["text"] for e in events if e["type"] == "assistant_text"] == ["Hello!"]
    code, listed = await api.get("sessions")
    assert session["id"] not in [s["id"] for s in listed["sessions"]]
    code, listed = await api.get("sessions", archived="true")
    assert [s["id"] for s in listed["sessions"]] == [session["id"]]

    code, _ = await api.patch(f"sessions/{session['id']}", {"archived": False})
    again = await api.prompt(session["id"], "hello again")
    assert (await api.wait_until_complete(session["id"], again["message_id"]))["success"]


async def test_secrets_stay_out_of_events_logs_and_the_database(api, make_repo, fake_anthropic, cloudws_data_dir):
    # A tool can print a secret (here on purpose; a prompt-injected file could make it happen).
    fake_anthropic.on("show env", tool_use("Bash", {"command": "echo KEY=$ANTHROPIC_API_KEY"}), text("Checked."))
    session = await api.new_session(make_repo())
    done = await api.prompt(session["id"], "show env")
    await api.wait_until_complete(session["id"], done["message_id"])
    key = "sk-test-cloudws"  # the sandbox_env API key from conftest
    events = await api.events(session["id"])
    assert key not in repr(events)
    outputs = [e["output"] for e in events if e["type"] == "tool_call" and e["status"] == "completed"]
    assert outputs == ["KEY=[redacted]"], "the tool ran and printed it; the transcript holds no secret"
    leaks = []
    # Claude Code's own files (its transcript under the session's conversation dir, or a sandbox's
    # claude dir) hold what the model saw, the tool's output included: not ours to redact.
    agents_own = ("/home/", "/claude/", "/repo/", "/conversations/")
    for path in cloudws_data_dir.rglob("*"):
        if path.is_file() and not any(part in str(path) for part in agents_own):
            if key.encode() in path.read_bytes():
                leaks.append(path.name)
    assert leaks == [], f"the API key was written to {leaks}"


async def test_a_secret_across_the_point_where_a_long_input_is_cut_leaves_no_part_behind(
    api, make_repo, fake_anthropic
):
    key = "sk-test-cloudws"  # the sandbox_env API key from conftest
    # The key starts 5 characters before the 64,000th of the Write's content, where inputs are cut.
    content = "x" * (DEFAULT_MAX_INPUT_CHARS - 5) + key + "\n"
    fake_anthropic.on("long file", tool_use("Write", {"file_path": "long.txt", "content": content}), text("Written."))
    session = await api.new_session(make_repo())
    prompt = await api.prompt(session["id"], "write a long file")
    await api.wait_until_complete(session["id"], prompt["message_id"])
    calls = [e for e in await api.events(session["id"]) if e["type"] == "tool_call"]
    shown = calls[-1]["input"]["content"]
    assert "more characters not shown" in shown, "the input was cut"
    assert key[:5] not in shown[-200:], f"a piece of the secret shows: {shown[-120:]!r}"


async def test_the_session_model_and_a_per_prompt_model_reach_the_api(api, make_repo, fake_anthropic):
    fake_anthropic.on("which model", text("This one."))
    session = await api.new_session(make_repo(), model="claude-sonnet-test")
    assert session["model"] == "claude-sonnet-test"
    first = await api.prompt(session["id"], "which model are you")
    await api.wait_until_complete(session["id"], first["message_id"])
    assert fake_anthropic.main_requests()[-1]["body"]["model"] == "claude-sonnet-test"

    second = await api.prompt(session["id"], "which model now", model="claude-opus-test")
    done = await api.wait_until_complete(session["id"], second["message_id"])
    assert done["success"]
    assert fake_anthropic.main_requests()[-1]["body"]["model"] == "claude-opus-test"
    user_messages = [e for e in await api.events(session["id"]) if e["type"] == "user_message"]
    assert [m["model"] for m in user_messages] == [None, "claude-opus-test"]


async def test_typing_starts_the_sandbox_before_the_first_prompt(api, open_socket, make_repo, fake_anthropic):
    session = await api.new_session(make_repo())
    sock = await open_socket(session["id"])
    await sock.send({"type": "subscribe"})
    await sock.recv()
    await sock.send({"type": "typing"})
    ready = await sock.until(lambda f: f["type"] == "event" and f["event"].get("status") == "ready", timeout_s=30)
    assert ready["event"]["type"] == "sandbox_status"
    await sock.send({"type": "typing"})  # more keystrokes start nothing new
    await sock.send({"type": "ping"})
    await sock.until(lambda f: f["type"] == "pong")
    statuses = [e["status"] for e in sock.events() if e["type"] == "sandbox_status"]
    assert statuses == ["spawning", "cloning", "ready"]
    assert fake_anthropic.main_requests() == [], "warming up asks the model nothing"


async def test_a_dropped_bridge_is_reattached_and_the_prompt_completes_once(api, make_repo, fake_anthropic, jp_serverapp):
    command = "echo begun > blip.txt && sleep 2 && echo ended >> blip.txt"
    fake_anthropic.on("survive a blip", tool_use("Bash", {"command": command, "timeout": 60000}), text("Survived."))
    session = await api.new_session(make_repo())
    prompt = await api.prompt(session["id"], "survive a blip")
    await api.wait_for_event(session["id"], lambda e: e["type"] == "tool_call" and e["status"] == "running")

    # The link to the sandbox breaks (a network blip to a remote sandbox); the sandbox lives on.
    runner = jp_serverapp.web_app.settings["cloudws_hub"].runner(session["id"])
    await runner.bridge.close()

    done = await api.wait_until_complete(session["id"], prompt["message_id"])
    assert done["success"] is True
    events = await api.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert not [e for e in events if e["type"] == "sandbox_status" and e["status"] == "failed"]
    assert [e["status"] for e in events if e["type"] == "tool_call"] == ["running", "completed"]
    assert [e["type"] for e in events].count("execution_complete") == 1
    asked = [r for r in fake_anthropic.main_requests() if "survive a blip" in repr(r["body"]["messages"])]
    assert len(asked) == 2, "one request for the tool call and one after it: the prompt ran once"
    assert runner.bridge is not None, "the hub is connected again"


async def test_a_sandbox_killed_mid_command_fails_its_prompt_and_leaves_no_process(
    api, make_repo, fake_anthropic, cloudws_data_dir: Path
):
    command = "echo busy && sleep 60 && echo done"
    fake_anthropic.on("keep busy", tool_use("Bash", {"command": command, "timeout": 120000}), text("Done."))
    session = await api.new_session(make_repo())
    prompt = await api.prompt(session["id"], "keep busy")
    assert await eventually(lambda: "sleep 60" in sandbox_commands(cloudws_data_dir), 30)

    (pid_file,) = (cloudws_data_dir / "sandboxes").glob("*/daemon.pid")
    crash_daemon(pid_file.parent)
    done = await api.wait_until_complete(session["id"], prompt["message_id"], timeout_s=30)
    assert done["success"] is False and "the sandbox died" in done["error"]
    left = await eventually(lambda: sandbox_commands(cloudws_data_dir) == [], 5)
    assert left, f"the agent and its tools went with the sandbox, not {sandbox_commands(cloudws_data_dir)}"


async def test_archiving_during_a_prompt_ends_it_and_the_session_works_after_unarchiving(
    api, make_repo, fake_anthropic, cloudws_data_dir: Path
):
    command = "echo archiving && sleep 60 && echo never"
    fake_anthropic.on("long job", tool_use("Bash", {"command": command, "timeout": 120000}), text("Never."))
    fake_anthropic.on("short job", text("Short."))
    session = await api.new_session(make_repo())
    long = await api.prompt(session["id"], "a long job")
    await api.wait_for_event(session["id"], lambda e: e["type"] == "tool_call" and e["status"] == "running")

    await api.patch(f"sessions/{session['id']}", {"archived": True})
    done = await api.wait_until_complete(session["id"], long["message_id"], timeout_s=30)
    assert done["success"] is False and done["interrupted"] is True
    await api.wait_for_event(session["id"], lambda e: e["type"] == "sandbox_status" and e["status"] == "stopped")
    assert sandbox_commands(cloudws_data_dir) == []
    code, now = await api.get(f"sessions/{session['id']}")
    assert now["status"] == "idle"

    await api.patch(f"sessions/{session['id']}", {"archived": False})
    short = await api.prompt(session["id"], "a short job")
    assert (await api.wait_until_complete(session["id"], short["message_id"]))["success"] is True


async def test_stop_right_after_sending_stops_the_prompt_whatever_stage_it_was_in(api, make_repo, fake_anthropic):
    fake_anthropic.on("quick edit", tool_use("Bash", {"command": "echo edited > edit.txt"}), text("Edited."))
    session = await api.new_session(make_repo())
    prompt = await api.prompt(session["id"], "a quick edit")
    code, _ = await api.post(f"sessions/{session['id']}/stop")  # the sandbox is still starting
    assert code == 202
    done = await api.wait_until_complete(session["id"], prompt["message_id"], timeout_s=30)
    assert done["success"] is False and done["interrupted"] is True
    assert not [e for e in await api.events(session["id"]) if e["type"] == "tool_call"], "nothing ran"


async def test_a_one_off_model_applies_to_its_prompt_only(api, make_repo, fake_anthropic):
    fake_anthropic.on("first question", text("First answer."))
    fake_anthropic.on("second question", text("Second answer."))
    fake_anthropic.on("third question", text("Third answer."))
    session = await api.new_session(make_repo())  # no model: Claude Code's default
    for text_, model in (("first question", None), ("second question", "claude-opus-test"), ("third question", None)):
        fields = {"model": model} if model else {}
        prompt = await api.prompt(session["id"], text_, **fields)
        assert (await api.wait_until_complete(session["id"], prompt["message_id"]))["success"]

    def model_for(question: str) -> str:
        """The model of the request that asked ``question`` (its latest human text)."""
        return next(r["body"]["model"] for r in fake_anthropic.main_requests()
                    if question in latest_human_text(r["body"]["messages"])[0])  # fmt: skip

    default = model_for("first question")
    assert model_for("second question") == "claude-opus-test"
    assert model_for("third question") == default, "back on the default model"
    last = repr(fake_anthropic.main_requests()[-1]["body"]["messages"])
    assert "First answer." in last and "Second answer." in last, "the conversation went on"


async def test_a_secret_split_across_streamed_fragments_or_in_a_prompt_never_shows(
    api, open_socket, make_repo, fake_anthropic
):
    key = "sk-test-cloudws"  # the sandbox_env API key from conftest
    fake_anthropic.on(
        "note the key",
        tool_use("Bash", {"command": "echo noted > note.txt"}),
        # Each fragment alone holds no secret: only the two together do.
        text("The key is sk-test-cloudws, noted.", chunks=["The key is sk-te", "st-cloudws, noted."]),
    )
    repo = make_repo()
    session = await api.new_session(repo)
    sock = await open_socket(session["id"])
    await sock.send({"type": "subscribe"})
    await sock.recv()
    await sock.send({"type": "prompt", "text": f"note the key {key} in a file", "client_request_id": "r1"})
    accepted = await sock.until(lambda f: f["type"] == "prompt_accepted")
    await sock.until(completed(accepted["message_id"]))

    (final,) = [e for e in live_events(sock.frames) if e["type"] == "assistant_text"]
    assert final["text"] == "The key is [redacted], noted."
    deltas = [f["text"] for f in sock.frames if f["type"] == "delta" and f["index"] == final["index"]]
    shown = ""
    for fragment in deltas:
        shown += fragment
        assert key not in shown, "the live view showed the secret before the final text replaced it"
    assert shown == final["text"], "the held-back tail was shown when the block ended"
    # The prompt becomes the commit's subject and body: pushed, it must not carry the key.
    message = git("--git-dir", str(repo), "log", "-1", "--format=%B", session["branch"])
    assert "note the key [redacted] in a file" in message and key not in message
    sock.close()
