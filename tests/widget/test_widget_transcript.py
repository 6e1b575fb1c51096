"""The chat's transcript after a sequence of events, as the user would see it."""

from __future__ import annotations

from jupyter_cloudws.widget.transcript import Transcript


def ev(seq: int, type_: str, **fields) -> dict:
    return {"seq": seq, "ts": 1000.0 + seq, "type": type_, **fields}


def user(seq: int, mid: str, text: str = "do it") -> dict:
    return ev(seq, "user_message", message_id=mid, text=text, author={"name": "Ada", "username": "ada"})


def tool(seq: int, mid: str, call: str, status: str = "running", tool_name: str = "Bash", **kw) -> dict:
    return ev(seq, "tool_call", message_id=mid, call_id=call, tool=tool_name,
              input=kw.pop("input", {"command": "ls -la"}), status=status, **kw)


def done(seq: int, mid: str, success: bool = True, **kw) -> dict:
    return ev(seq, "execution_complete", message_id=mid, success=success, usage={}, **kw)


def test_a_prompt_with_a_tool_call_and_an_answer():
    t = Transcript()
    t.apply(user(1, "m1", "List the files"))
    assert t.working and t.running_message_id == "m1"
    t.apply(tool(2, "m1", "c1"))
    t.apply(tool(3, "m1", "c1", "completed", output="a.txt\nb.txt", duration_ms=12))
    t.apply(ev(4, "assistant_text", message_id="m1", text="Two **files**.", index=1))
    t.apply(ev(5, "git", branch="cloudws/x", sha="0123456789abcdef", pushed=True, committed=True, message_id="m1"))
    t.apply(done(6, "m1", cost_usd=0.0123, duration_ms=2300))

    kinds = [(i["kind"], i["id"]) for i in t.items]
    assert kinds == [("user", "u:m1"), ("tool", "t:c1"), ("assistant", "a:m1:1"), ("git", "g:m1"), ("result", "r:m1")]
    row = t.get("t:c1")
    assert row["status"] == "completed" and row["output"] == "a.txt\nb.txt" and row["duration_ms"] == 12
    assert row["summary"] == "ls -la" and row["icon"] and row["group_words"][0] == "Ran"
    assert row["started_ts"] == 1002.0, "the start time survives the completed event"
    assert "<strong>files</strong>" in t.get("a:m1:1")["html"]
    assert t.get("g:m1")["sha"] == "0123456789"
    result = t.get("r:m1")
    assert result["success"] and result["cost_usd"] == 0.0123 and result["duration_ms"] == 2300
    assert not t.working and t.running_message_id is None


def test_replayed_events_change_nothing():
    t = Transcript()
    assert t.apply(user(1, "m1"))
    assert t.apply(user(1, "m1")) == []
    assert len(t.items) == 1 and t.last_seq == 1


def test_streaming_text_renders_on_demand_and_the_final_event_replaces_it():
    t = Transcript()
    t.apply(user(1, "m1"))
    assert t.apply_delta("m1", 1, "Hello ") == []
    t.apply_delta("m1", 1, "**wor")
    (item,) = t.render_streaming()
    assert item["streaming"] and item["id"] == "a:m1:1" and "Hello" in item["html"]
    assert t.render_streaming() == [], "nothing grew since"
    t.apply_delta("m1", 1, "ld**")
    assert "<strong>world</strong>" in t.render_streaming()[0]["html"]
    (final,) = t.apply(ev(2, "assistant_text", message_id="m1", text="Hello **world**!", index=1))
    assert not final["streaming"] and "!" in final["html"]
    assert [i["id"] for i in t.items] == ["u:m1", "a:m1:1"], "the final text took the streaming block's place"
    assert t.apply_delta("m1", 1, "late") == [] and t.render_streaming() == []


def test_an_interrupt_closes_streaming_text_and_running_tools():
    t = Transcript()
    t.apply(user(1, "m1"))
    t.apply(tool(2, "m1", "c1"))
    t.apply_delta("m1", 1, "Working on")
    changed = t.apply(done(3, "m1", success=False, interrupted=True, error="interrupted by the user"))
    ids = {i["id"] for i in changed}
    assert {"r:m1", "a:m1:1", "t:c1"} <= ids
    assert t.get("a:m1:1")["streaming"] is False and "Working on" in t.get("a:m1:1")["html"]
    assert t.get("t:c1")["status"] == "error"
    assert t.get("r:m1")["interrupted"] is True


def test_queued_prompts_are_marked_until_their_work_starts():
    t = Transcript()
    t.apply(user(1, "m1"))
    t.apply(user(2, "m2"))
    assert t.get("u:m1")["queued"] is False and t.get("u:m2")["queued"] is True
    t.apply(done(3, "m1"))
    assert t.running_message_id == "m2"
    changed = t.apply(tool(4, "m2", "c9"))
    assert t.get("u:m2")["queued"] is False and "u:m2" in {i["id"] for i in changed}


def test_a_failed_sandbox_and_errors_show_in_line_and_git_without_changes_does_not():
    t = Transcript()
    t.apply(ev(1, "sandbox_status", status="spawning", detail="starting"))
    assert t.sandbox_status == "spawning" and t.items == []
    t.apply(ev(2, "sandbox_status", status="failed", detail="the sandbox daemon exited with code -9"))
    assert t.sandbox_status == "failed"
    assert "exited with code -9" in t.items[-1]["text"] and t.items[-1]["level"] == "error"
    t.apply(ev(3, "error", code="queue_full", message="too many"))
    assert t.items[-1]["text"] == "queue_full: too many"
    assert t.apply(ev(4, "git", branch="b", sha="abc", pushed=False, committed=False, message_id="m")) == []


def test_hostile_assistant_text_is_rendered_harmless():
    t = Transcript()
    t.apply(ev(1, "assistant_text", message_id="m1", text="<img src=x onerror=alert(1)> and <script>x()</script>", index=1))
    html = t.get("a:m1:1")["html"]
    assert "<img" not in html and "<script" not in html
