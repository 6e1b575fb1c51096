"""Claude Code 2.1.x stream-json, as the sandbox daemon reads it, turned into session events."""

from __future__ import annotations

import json

import pytest

from cloudws_sandbox.protocol import (
    BRIDGE_MAX_LINE_BYTES,
    AssistantText,
    ToolCall,
    dumps,
    make_event,
    validate_event_body,
)
from cloudws_sandbox.normalize import (
    DEFAULT_MAX_OUTPUT_CHARS,
    MAX_INPUT_JSON_CHARS,
    BlockEnd,
    Delta,
    Normalizer,
    TurnEnd,
    cut_input,
    truncate,
)

AGENT_SESSION = "5b0c8f1e-3a47-4f7e-9d52-1c2b3a4d5e6f"
MID = "prompt-1"


def line(obj: dict) -> dict:
    """Round-trip through JSON, as the daemon parses each stdout line."""
    return json.loads(json.dumps(obj))


def system_init(session_id: str = AGENT_SESSION) -> dict:
    return line({
        "type": "system", "subtype": "init", "cwd": "/workspace/repo", "session_id": session_id,
        "tools": ["Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "TodoWrite"],
        "mcp_servers": [], "model": "claude-sonnet-4-5-20250929", "permissionMode": "bypassPermissions",
        "slash_commands": ["compact", "review"], "apiKeySource": "ANTHROPIC_API_KEY",
        "claude_code_version": "2.1.12", "output_style": "default", "agents": ["general-purpose"],
        "skills": [], "plugins": [], "uuid": "0d6f4b1e-8d0c-4c55-9d0f-1f2e3d4c5b6a",
    })  # fmt: skip


def stream(event: dict, parent: str | None = None) -> dict:
    return line({
        "type": "stream_event", "event": event, "session_id": AGENT_SESSION,
        "parent_tool_use_id": parent, "uuid": "9a1b2c3d-0000-4000-8000-000000000001",
    })  # fmt: skip


def message_start() -> dict:
    return stream({"type": "message_start", "message": {
        "model": "claude-sonnet-4-5-20250929", "id": "msg_01AbC", "type": "message", "role": "assistant",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1},
    }})  # fmt: skip


def block_start(index: int, block_type: str = "text") -> dict:
    block = {"type": "text", "text": ""} if block_type == "text" else {
        "type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {},
    }  # fmt: skip
    return stream({"type": "content_block_start", "index": index, "content_block": block})


def text_delta(index: int, text: str) -> dict:
    return stream({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})


def json_delta(index: int, partial: str) -> dict:
    return stream({"type": "content_block_delta", "index": index,
                   "delta": {"type": "input_json_delta", "partial_json": partial}})  # fmt: skip


def block_stop(index: int) -> dict:
    return stream({"type": "content_block_stop", "index": index})


def assistant(*content: dict, parent: str | None = None) -> dict:
    return line({
        "type": "assistant",
        "message": {
            "model": "claude-sonnet-4-5-20250929", "id": "msg_01AbC", "type": "message", "role": "assistant",
            "content": list(content), "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 12, "service_tier": "standard"},
        },
        "parent_tool_use_id": parent, "session_id": AGENT_SESSION, "uuid": "1e2d3c4b-0000-4000-8000-000000000002",
    })  # fmt: skip


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def tool_use(call_id: str, name: str, tool_input: dict) -> dict:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


def tool_result(call_id: str, content, is_error: bool = False, parent: str | None = None) -> dict:
    return line({
        "type": "user",
        "message": {"role": "user", "content": [
            {"tool_use_id": call_id, "type": "tool_result", "content": content, "is_error": is_error},
        ]},
        "parent_tool_use_id": parent, "session_id": AGENT_SESSION, "uuid": "2f3e4d5c-0000-4000-8000-000000000003",
        "tool_use_result": {"stdout": "", "stderr": "", "interrupted": False, "isImage": False},
    })  # fmt: skip


USAGE = {
    "input_tokens": 12, "cache_creation_input_tokens": 4021, "cache_read_input_tokens": 13250,
    "output_tokens": 310, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
    "service_tier": "standard",
}  # fmt: skip


def result_success(**over) -> dict:
    obj = {
        "type": "result", "subtype": "success", "is_error": False, "duration_ms": 8123, "duration_api_ms": 7001,
        "num_turns": 3, "result": "I added the README.", "session_id": AGENT_SESSION, "total_cost_usd": 0.0421,
        "usage": USAGE, "modelUsage": {}, "permission_denials": [], "uuid": "3a4b5c6d-0000-4000-8000-000000000004",
    }  # fmt: skip
    obj.update(over)
    return line(obj)


@pytest.fixture
def norm() -> Normalizer:
    n = Normalizer()
    n.begin(MID)
    return n


def feed_all(n: Normalizer, lines: list[dict], now_s: float = 100.0) -> list:
    out = []
    for item in lines:
        out += n.feed(item, now_s)
    return out


# ---------------------------------------------------------------------------------------------


def test_system_init_records_the_agent_session_and_emits_nothing(norm):
    assert norm.feed(system_init(), 1.0) == []
    assert norm.agent_session_id == AGENT_SESSION
    # A later init without an id (should it happen) keeps what we know.
    norm.feed(line({"type": "system", "subtype": "init"}), 2.0)
    assert norm.agent_session_id == AGENT_SESSION


def test_other_system_and_unknown_lines_are_ignored(norm):
    assert norm.feed(line({"type": "system", "subtype": "compact_boundary", "session_id": "x"}), 1.0) == []
    assert norm.feed(line({"type": "rate_limit_event"}), 1.0) == []
    assert norm.agent_session_id is None


def test_streamed_text_becomes_deltas_then_one_assistant_text_with_the_same_index(norm):
    out = feed_all(norm, [
        system_init(), message_start(),
        block_start(0), text_delta(0, "I'll add "), text_delta(0, "a README."),
        assistant(text("I'll add a README.")),
        block_stop(0),
    ])  # fmt: skip
    deltas = [o for o in out if isinstance(o, Delta)]
    texts = [o for o in out if isinstance(o, AssistantText)]
    assert [d.text for d in deltas] == ["I'll add ", "a README."]
    assert {d.message_id for d in deltas} == {MID}
    assert {d.index for d in deltas} == {1}
    assert texts == [AssistantText(MID, "I'll add a README.", 1)]
    assert "".join(d.text for d in deltas) == texts[0].text


def test_the_second_text_block_of_a_prompt_gets_the_next_index(norm):
    out = feed_all(norm, [
        message_start(), block_start(0), text_delta(0, "Looking."), block_stop(0), assistant(text("Looking.")),
        # a tool call in between, streamed as input_json deltas (not text)
        block_start(1, "tool_use"), json_delta(1, '{"command": "ls"}'), block_stop(1),
        assistant(tool_use("toolu_01", "Bash", {"command": "ls"})),
        tool_result("toolu_01", "README.md"),
        message_start(), block_start(0), text_delta(0, "Done."), block_stop(0), assistant(text("Done.")),
    ])  # fmt: skip
    deltas = [(o.index, o.text) for o in out if isinstance(o, Delta)]
    texts = [(o.index, o.text) for o in out if isinstance(o, AssistantText)]
    assert deltas == [(1, "Looking."), (2, "Done.")]  # the json delta of the tool call is not text
    assert texts == [(1, "Looking."), (2, "Done.")]


def test_begin_restarts_the_index_for_the_next_prompt(norm):
    feed_all(norm, [block_start(0), text_delta(0, "a"), block_stop(0), assistant(text("a"))])
    norm.begin("prompt-2")
    out = feed_all(norm, [block_start(0), text_delta(0, "b"), block_stop(0), assistant(text("b"))])
    assert out == [Delta("prompt-2", 1, "b"), BlockEnd("prompt-2", 1), AssistantText("prompt-2", "b", 1)]


def test_deltas_outside_a_text_block_and_empty_deltas_are_dropped(norm):
    assert norm.feed(text_delta(0, "stray"), 1.0) == []
    norm.feed(block_start(0), 1.0)
    assert norm.feed(text_delta(0, ""), 1.0) == []
    norm.feed(block_stop(0), 1.0)
    assert norm.feed(text_delta(0, "after stop"), 1.0) == []


def test_blank_assistant_text_is_not_an_event(norm):
    assert norm.feed(assistant(text("  \n")), 1.0) == []
    assert norm.feed(assistant(text("real")), 1.0) == [AssistantText(MID, "real", 1)]


def test_a_tool_call_runs_then_completes_with_its_duration_and_input(norm):
    started = norm.feed(assistant(tool_use("toolu_01", "Bash", {"command": "pytest -q"})), now_s=10.0)
    assert started == [ToolCall(MID, "toolu_01", "Bash", {"command": "pytest -q"}, "running")]
    finished = norm.feed(tool_result("toolu_01", "3 passed in 0.12s"), now_s=12.5)
    assert finished == [
        ToolCall(MID, "toolu_01", "Bash", {"command": "pytest -q"}, "completed", "3 passed in 0.12s", 2500)
    ]
    for event in started + finished:
        validate_event_body(event.to_dict())


def test_a_tool_result_given_as_a_list_of_text_blocks_is_joined(norm):
    norm.feed(assistant(tool_use("toolu_02", "Read", {"file_path": "/repo/a.py"})), now_s=1.0)
    content = [{"type": "text", "text": "line one"}, {"type": "image", "source": {}}, {"type": "text", "text": "two"}]
    [call] = norm.feed(tool_result("toolu_02", content), now_s=1.25)
    assert call.status == "completed"
    assert call.output == "line one\n[image]\ntwo"
    assert call.duration_ms == 250
    assert call.input == {"file_path": "/repo/a.py"} and call.tool == "Read"


def test_a_failing_tool_is_an_error(norm):
    norm.feed(assistant(tool_use("toolu_03", "Bash", {"command": "false"})), now_s=5.0)
    [call] = norm.feed(tool_result("toolu_03", [{"type": "text", "text": "Exit code 1"}], is_error=True), now_s=5.04)
    assert (call.status, call.output, call.tool, call.input) == ("error", "Exit code 1", "Bash", {"command": "false"})
    assert call.duration_ms == 40


def test_parallel_tool_calls_are_matched_by_id(norm):
    out = norm.feed(assistant(
        text("Reading both."),
        tool_use("toolu_a", "Read", {"file_path": "a"}),
        tool_use("toolu_b", "Read", {"file_path": "b"}),
    ), now_s=0.0)  # fmt: skip
    assert [type(o).__name__ for o in out] == ["AssistantText", "ToolCall", "ToolCall"]
    [b] = norm.feed(tool_result("toolu_b", "B"), now_s=1.0)
    [a] = norm.feed(tool_result("toolu_a", "A"), now_s=3.0)
    assert (b.call_id, b.input, b.output, b.duration_ms) == ("toolu_b", {"file_path": "b"}, "B", 1000)
    assert (a.call_id, a.input, a.output, a.duration_ms) == ("toolu_a", {"file_path": "a"}, "A", 3000)


def test_a_plain_user_text_line_is_not_a_tool_result(norm):
    assert norm.feed(line({"type": "user", "message": {"role": "user", "content": "hello"}}), 1.0) == []


def test_a_successful_result_ends_the_turn_with_cost_and_usage(norm):
    norm.feed(system_init(), 0.0)
    [end] = norm.feed(result_success(), 9.0)
    assert end == TurnEnd(
        success=True, error=None, cost_usd=0.0421, usage=USAGE, duration_ms=8123,
        session_id=AGENT_SESSION, result_text="I added the README.",
    )  # fmt: skip


def test_the_result_session_id_wins_when_init_was_missed(norm):
    [end] = norm.feed(result_success(session_id="resumed-id"), 1.0)
    assert end.session_id == "resumed-id" == norm.agent_session_id


def test_an_error_during_execution_fails_the_turn(norm):
    [end] = norm.feed(line({
        "type": "result", "subtype": "error_during_execution", "duration_ms": 1500, "duration_api_ms": 0,
        "is_error": True, "num_turns": 1, "session_id": AGENT_SESSION, "total_cost_usd": 0, "usage": USAGE,
        "modelUsage": {}, "permission_denials": [], "errors": ["Tool execution failed", "aborted"],
        "uuid": "4b5c6d7e-0000-4000-8000-000000000005",
    }), 2.0)  # fmt: skip
    assert end.success is False
    assert isinstance(end.error, str)
    assert end.error.startswith("error_during_execution")
    assert "Tool execution failed" in end.error and "aborted" in end.error
    assert end.cost_usd == 0 and end.duration_ms == 1500


def test_an_error_subtype_without_detail_still_names_the_failure(norm):
    [end] = norm.feed(line({"type": "result", "subtype": "error_max_turns", "is_error": False}), 1.0)
    assert end.success is False
    assert end.error == "error_max_turns"
    assert end.usage == {} and end.cost_usd is None


def test_is_error_with_subtype_success_is_a_failure_carrying_the_message(norm):
    # e.g. an API error surfaces as a "success" result whose text is the error.
    [end] = norm.feed(result_success(is_error=True, result="API Error: 529 Overloaded"), 1.0)
    assert end.success is False
    assert "API Error: 529 Overloaded" in end.error


def test_sub_agent_lines_are_ignored(norm):
    parent = "toolu_task"
    out = norm.feed(assistant(tool_use(parent, "Task", {"description": "explore", "prompt": "look"})), 0.0)
    assert [o.status for o in out] == ["running"]
    inner = [
        stream({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, parent),
        stream({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}, parent),
        assistant(text("sub-agent thinking"), tool_use("toolu_inner", "Grep", {"pattern": "x"}), parent=parent),
        tool_result("toolu_inner", "found", parent=parent),
    ]
    assert feed_all(norm, inner) == []
    # Only the Task call itself is finished, and the main agent's text keeps index 1.
    [done] = norm.feed(tool_result(parent, [{"type": "text", "text": "summary"}]), 4.0)
    assert (done.call_id, done.tool, done.status, done.duration_ms) == (parent, "Task", "completed", 4000)
    assert norm.feed(assistant(text("All done.")), 5.0) == [AssistantText(MID, "All done.", 1)]


def test_abandon_closes_open_calls_as_errors_then_fails_the_turn(norm):
    norm.feed(system_init(), 0.0)
    norm.feed(assistant(tool_use("toolu_1", "Bash", {"command": "sleep 100"}),
                        tool_use("toolu_2", "Read", {"file_path": "x"})), now_s=10.0)  # fmt: skip
    norm.feed(tool_result("toolu_2", "x"), now_s=11.0)  # this one finished normally
    out = norm.abandon("Claude Code exited with status 137", now_s=13.0)
    assert out == [
        ToolCall(MID, "toolu_1", "Bash", {"command": "sleep 100"}, "error", "Claude Code exited with status 137", 3000),
        TurnEnd(False, "Claude Code exited with status 137", None, {}, None, AGENT_SESSION, None),
    ]
    # Nothing stays open: abandoning again only ends the turn.
    assert norm.abandon("again", 14.0) == [TurnEnd(False, "again", None, {}, None, AGENT_SESSION, None)]


def test_long_tool_output_is_truncated_with_a_note():
    n = Normalizer(max_output_chars=100)
    n.begin(MID)
    n.feed(assistant(tool_use("toolu_1", "Bash", {"command": "cat big.log"})), 0.0)
    [call] = n.feed(tool_result("toolu_1", "x" * 250), 1.0)
    assert call.output.startswith("x" * 100)
    assert not call.output.startswith("x" * 101)
    assert call.output.endswith("(150 more characters not shown)")


def test_truncate_leaves_short_text_alone():
    assert truncate("abc", 3) == "abc"
    assert truncate("abcd", 3) == "abc\n… (1 more characters not shown)"
    assert DEFAULT_MAX_OUTPUT_CHARS == Normalizer().max_output_chars


def test_a_result_for_an_unknown_call_is_still_reported(norm):
    [call] = norm.feed(tool_result("toolu_ghost", "late"), 1.0)
    assert (call.call_id, call.tool, call.status, call.duration_ms) == ("toolu_ghost", "unknown", "completed", 0)


def test_the_end_of_a_streamed_text_block_is_reported_once_and_a_tool_block_end_is_not(norm):
    out = feed_all(norm, [
        block_start(0), text_delta(0, "a"), block_stop(0), block_stop(0),
        block_start(1, "tool_use"), json_delta(1, '{"command": "ls"}'), block_stop(1),
    ])  # fmt: skip
    assert [o for o in out if isinstance(o, BlockEnd)] == [BlockEnd(MID, 1)]


def test_a_big_write_is_cut_at_the_source_with_a_note_and_fits_a_frame():
    n = Normalizer(max_input_chars=1000)
    n.begin(MID)
    big = "é" * (BRIDGE_MAX_LINE_BYTES // 2 + 1)  # over the frame limit once UTF-8 encoded
    [started] = n.feed(assistant(tool_use("toolu_w", "Write", {"file_path": "/repo/big.txt", "content": big})), 0.0)
    [finished] = n.feed(tool_result("toolu_w", "File created successfully at: /repo/big.txt"), 1.0)
    for call in (started, finished):
        assert call.input["file_path"] == "/repo/big.txt", "short values are kept whole"
        assert call.input["content"].startswith("é" * 1000) and not call.input["content"].startswith("é" * 1001)
        assert call.input["content"].endswith(f"({len(big) - 1000} more characters not shown)")
        frame = dumps({"kind": "event", "event": make_event(call, 1)})
        assert len(frame.encode()) < BRIDGE_MAX_LINE_BYTES
        validate_event_body(call.to_dict())


def test_strings_nested_in_a_tool_input_are_cut_too():
    edits = [{"old_string": "a" * 50, "new_string": "b" * 5000}, {"old_string": "c", "new_string": "d"}]
    cut = cut_input({"edits": edits, "replace_all": False, "count": 3}, 100)
    assert cut["edits"][0]["old_string"] == "a" * 50
    assert cut["edits"][0]["new_string"].endswith("(4900 more characters not shown)")
    assert cut["edits"][1] == {"old_string": "c", "new_string": "d"}
    assert (cut["replace_all"], cut["count"]) == (False, 3)


def test_an_input_of_very_many_strings_is_replaced_by_a_preview_that_fits_a_frame():
    many = {f"k{i}": "x" * 1000 for i in range(MAX_INPUT_JSON_CHARS // 1000 + 10)}
    cut = cut_input(many, 1000)
    assert list(cut) == ["truncated_input"]
    assert cut["truncated_input"].startswith('{"k0":"xxx') and "more characters not shown" in cut["truncated_input"]


def test_a_huge_assistant_text_and_error_are_cut_with_a_note():
    n = Normalizer(max_text_chars=100)
    n.begin(MID)
    [said] = n.feed(assistant(text("y" * 1000)), 0.0)
    assert said.text.endswith("(900 more characters not shown)")
    end = n.feed(result_success(subtype="error_during_execution", is_error=True, result="z" * 1000), 1.0)[0]
    assert end.error.endswith("more characters not shown)") and len(end.error) < 200
