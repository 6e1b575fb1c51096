"""The wire vocabulary: what a client, the hub and a sandbox may say to each other."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from cloudws_sandbox import protocol as p
from cloudws_sandbox.protocol import (
    EVENT_TYPES,
    AssistantText,
    ErrorEvent,
    ExecutionComplete,
    GitEvent,
    Ping,
    PromptRequest,
    ProtocolError,
    PullRequestEvent,
    SandboxProgressEvent,
    SandboxStatusEvent,
    Stop,
    Subscribe,
    ToolCall,
    Typing,
    UserMessage,
    make_event,
    parse_bridge_op,
    parse_bridge_reply,
    parse_client_frame,
    validate_event_body,
)

LIMIT = 1000  # max_prompt_bytes used throughout


def frame(**obj) -> str:
    return json.dumps(obj)


def client(raw: str | bytes, limit: int = LIMIT):
    return parse_client_frame(raw, max_prompt_bytes=limit)


def error_code(fn, *args, **kwargs) -> str:
    with pytest.raises(ProtocolError) as info:
        fn(*args, **kwargs)
    return info.value.code


# ---------------------------------------------------------------------------------------------
# Client -> hub frames
# ---------------------------------------------------------------------------------------------


class TestClientFrames:
    def test_a_fresh_tab_subscribes_without_a_cursor(self):
        assert client(frame(type="subscribe")) == Subscribe(after=None)

    def test_a_reconnecting_tab_subscribes_after_the_last_seq_it_saw(self):
        assert client(frame(type="subscribe", after=42)) == Subscribe(after=42)
        assert client(frame(type="subscribe", after=0)) == Subscribe(after=0)

    def test_a_prompt_carries_text_request_id_and_model(self):
        got = client(frame(type="prompt", text="Fix the flaky test", client_request_id="req-1", model="opus"))
        assert got == PromptRequest(text="Fix the flaky test", client_request_id="req-1", model="opus")

    def test_a_prompt_without_optional_fields(self):
        assert client(frame(type="prompt", text="hi")) == PromptRequest(text="hi")

    def test_bytes_frames_are_accepted_too(self):
        assert client(frame(type="prompt", text="héllo").encode("utf-8")) == PromptRequest(text="héllo")

    @pytest.mark.parametrize("kind, expected", [("stop", Stop()), ("typing", Typing()), ("ping", Ping())])
    def test_control_frames(self, kind, expected):
        assert client(frame(type=kind)) == expected

    def test_every_advertised_frame_type_parses(self):
        extra = {"prompt": {"text": "x"}}
        for kind in p.CLIENT_FRAME_TYPES:
            client(frame(type=kind, **extra.get(kind, {})))  # must not raise

    @pytest.mark.parametrize("raw", ["{not json", "", '{"type": "ping"', b"\xff\xfe{}"])
    def test_malformed_json_is_refused(self, raw):
        assert error_code(client, raw) == "malformed"

    @pytest.mark.parametrize("raw", ["[]", '"ping"', "42", "null", '[{"type": "ping"}]'])
    def test_a_frame_must_be_an_object(self, raw):
        assert error_code(client, raw) == "malformed"

    @pytest.mark.parametrize("raw", [frame(type="launch_missiles"), frame(kind="ping"), frame(type=None)])
    def test_unknown_frame_types_are_refused_and_named(self, raw):
        with pytest.raises(ProtocolError) as info:
            client(raw)
        assert info.value.code == "unknown_type"
        assert "subscribe" in info.value.message  # tells the peer what it could have sent

    @pytest.mark.parametrize(
        "obj",
        [
            {"type": "prompt"},
            {"type": "prompt", "text": ""},
            {"type": "prompt", "text": "   \n\t "},
            {"type": "prompt", "text": 7},
            {"type": "prompt", "text": None},
            {"type": "prompt", "text": ["a"]},
        ],
    )
    def test_a_prompt_needs_non_empty_text(self, obj):
        assert error_code(client, json.dumps(obj)) == "bad_request"

    def test_prompt_size_is_measured_in_utf8_bytes_not_characters(self):
        # 334 euro signs are only 334 characters (well under the limit) but 1002 bytes.
        too_big = "€" * 334
        assert len(too_big) < LIMIT < len(too_big.encode("utf-8"))
        with pytest.raises(ProtocolError) as info:
            client(frame(type="prompt", text=too_big))
        assert info.value.code == "prompt_too_large"
        assert "1002" in info.value.message

    def test_a_multibyte_prompt_just_under_the_limit_is_accepted(self):
        fits = "€" * 333  # 999 bytes
        assert client(frame(type="prompt", text=fits)).text == fits

    def test_a_prompt_of_exactly_the_limit_is_accepted_one_more_byte_is_not(self):
        exact = "é" * (LIMIT // 2)  # 2 bytes each
        assert len(exact.encode("utf-8")) == LIMIT
        assert client(frame(type="prompt", text=exact)).text == exact
        assert error_code(client, frame(type="prompt", text=exact + "a")) == "prompt_too_large"

    def test_a_frame_far_beyond_any_prompt_is_refused_before_parsing(self):
        huge = json.dumps({"type": "ping", "pad": "x" * (LIMIT * 2 + 5000)})
        assert error_code(client, huge) == "too_large"

    @pytest.mark.parametrize("after", [-1, True, False, "3", 1.5, [], {}])
    def test_a_bad_subscribe_cursor_is_refused(self, after):
        assert error_code(client, frame(type="subscribe", after=after)) == "bad_request"

    @pytest.mark.parametrize(
        "extra",
        [{"client_request_id": 5}, {"client_request_id": "r" * 201}, {"model": 3}, {"model": ["opus"]}],
    )
    def test_bad_optional_prompt_fields_are_refused(self, extra):
        assert error_code(client, frame(type="prompt", text="hi", **extra)) == "bad_request"

    def test_an_error_becomes_an_error_frame_for_the_peer(self):
        with pytest.raises(ProtocolError) as info:
            client("[]")
        assert info.value.to_frame() == {"type": "error", "code": "malformed", "message": info.value.message}


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


SAMPLES = [
    UserMessage("m1", "Add a README", author={"name": "ada"}, model="sonnet"),
    UserMessage("m1", "Add a README"),
    AssistantText("m1", "Done. I added **README.md**.", index=2),
    ToolCall("m1", "toolu_1", "Bash", {"command": "ls"}),
    ToolCall("m1", "toolu_1", "Bash", {"command": "ls"}, "completed", "a\nb", 120),
    ToolCall("m1", "toolu_2", "Read", {"file_path": "/x"}, "error", "ENOENT", 3),
    ExecutionComplete("m1", True, cost_usd=0.01, usage={"input_tokens": 3}, duration_ms=900),
    ExecutionComplete("m1", False, error="agent died", interrupted=True),
    SandboxStatusEvent("ready"),
    SandboxStatusEvent("failed", detail="clone failed"),
    SandboxProgressEvent("setup", "failed", elapsed_ms=1200, detail="exit code 1", output="npm ERR! 404"),
    GitEvent("cloudws/abc", "deadbeef", pushed=True, message_id="m1"),
    GitEvent("cloudws/abc", "", pushed=False, committed=False, error="push rejected"),
    GitEvent("cloudws/abc", "b" * 40, pushed=True, message_id="m1", before="a" * 40, files_total=301, files=[
        {"path": "src/app.py", "status": "modified", "additions": 3, "deletions": 1},
        {"path": "docs/new name.md", "old_path": "old.md", "status": "renamed", "additions": 0, "deletions": 0},
        {"path": "logo.png", "status": "added", "additions": None, "deletions": None},
    ]),  # fmt: skip
    ErrorEvent("agent_crashed", "Claude Code exited with status 1", message_id="m1"),
    PullRequestEvent(7, "https://github.com/o/r/pull/7", "merged", "Add a README"),
]


class TestEvents:
    def test_the_samples_cover_every_event_type(self):
        assert {type(s).type for s in SAMPLES} == set(EVENT_TYPES)

    @pytest.mark.parametrize("body", SAMPLES, ids=lambda b: type(b).__name__)
    def test_every_event_round_trips_through_json(self, body):
        data = json.loads(json.dumps(body.to_dict()))
        assert data["type"] == type(body).type
        assert validate_event_body(data) is data
        rebuilt = EVENT_TYPES[data.pop("type")](**data)
        assert rebuilt == body

    def test_unknown_event_type_is_refused(self):
        with pytest.raises(ProtocolError) as info:
            validate_event_body({"type": "telepathy", "text": "hi"})
        assert info.value.code == "bad_event"
        assert "telepathy" in info.value.message

    @pytest.mark.parametrize("body", [{"type": ["user_message"]}, {"type": {"a": 1}}], ids=["list", "object"])
    def test_a_list_or_object_as_the_event_type_is_refused_not_a_crash(self, body):
        with pytest.raises(ProtocolError) as info:  # a TypeError (unhashable) before: found by Hypothesis
            validate_event_body(body)
        assert info.value.code == "bad_event"

    def test_an_event_must_be_an_object(self):
        assert error_code(validate_event_body, ["user_message"]) == "bad_event"

    def test_an_event_without_a_type_is_refused(self):
        assert error_code(validate_event_body, {"message_id": "m", "text": "t"}) == "bad_event"

    def test_missing_required_fields_are_named(self):
        with pytest.raises(ProtocolError) as info:
            validate_event_body({"type": "tool_call", "message_id": "m1", "tool": "Bash", "input": {}})
        assert info.value.code == "bad_event"
        assert "call_id" in info.value.message
        assert "tool_call" in info.value.message

    def test_fields_with_defaults_are_optional(self):
        validate_event_body({"type": "assistant_text", "message_id": "m", "text": "t"})
        validate_event_body({"type": "sandbox_status", "status": "cloning"})

    @pytest.mark.parametrize("status", sorted(p.SANDBOX_STATUSES))
    def test_known_sandbox_statuses_are_accepted(self, status):
        validate_event_body({"type": "sandbox_status", "status": status})

    @pytest.mark.parametrize("status", ["exploded", "READY", "", None])
    def test_an_unknown_sandbox_status_is_refused(self, status):
        assert error_code(validate_event_body, {"type": "sandbox_status", "status": status}) == "bad_event"

    def test_an_unknown_tool_status_is_refused(self):
        body = ToolCall("m", "c", "Bash", {}).to_dict() | {"status": "pending"}
        assert error_code(validate_event_body, body) == "bad_event"

    def test_make_event_adds_seq_and_the_given_timestamp(self):
        event = make_event(SandboxStatusEvent("ready"), seq=7, ts=1234.5)
        assert event == {"seq": 7, "ts": 1234.5, "type": "sandbox_status", "status": "ready", "detail": ""}

    def test_make_event_stamps_the_current_time_by_default(self):
        before = time.time()
        event = make_event({"type": "sandbox_status", "status": "ready"}, seq=1)
        assert before <= event["ts"] <= time.time()
        assert event["seq"] == 1

    def test_make_event_replaces_a_stale_seq_and_ts_without_touching_the_input(self):
        body = {"type": "sandbox_status", "status": "ready", "seq": 99, "ts": 1.0}
        event = make_event(body, seq=3, ts=2.0)
        assert (event["seq"], event["ts"]) == (3, 2.0)
        assert body["seq"] == 99 and body["ts"] == 1.0
        assert list(event)[:2] == ["seq", "ts"]


# ---------------------------------------------------------------------------------------------
# Bridge frames
# ---------------------------------------------------------------------------------------------


class TestBridge:
    def test_the_hub_frames_the_sandbox_understands(self):
        attach = p.bridge_attach(5)
        assert parse_bridge_op(p.dumps(attach)) == attach
        prompt = p.bridge_prompt("m1", "Rename foo → bar", None, {"name": "ada"})
        assert parse_bridge_op(p.dumps(prompt).encode("utf-8")) == prompt
        for op in ("interrupt", "ping", "shutdown"):
            assert parse_bridge_op(frame(op=op)) == {"op": op}

    def test_attach_without_a_cursor_is_fine(self):
        assert parse_bridge_op(frame(op="attach")) == {"op": "attach"}

    @pytest.mark.parametrize("after", [-3, True, "0"])
    def test_attach_with_a_bad_cursor_is_refused(self, after):
        assert error_code(parse_bridge_op, frame(op="attach", after=after)) == "bad_request"

    @pytest.mark.parametrize(
        "obj",
        [
            {"op": "prompt", "text": "hi"},
            {"op": "prompt", "message_id": "m1"},
            {"op": "prompt", "message_id": 1, "text": "hi"},
            {"op": "prompt", "message_id": "m1", "text": None},
        ],
    )
    def test_a_prompt_op_needs_string_message_id_and_text(self, obj):
        assert error_code(parse_bridge_op, json.dumps(obj)) == "bad_request"

    @pytest.mark.parametrize("obj", [{"op": "reboot"}, {"kind": "ping"}, {}])
    def test_unknown_ops_are_refused(self, obj):
        assert error_code(parse_bridge_op, json.dumps(obj)) == "unknown_op"

    @pytest.mark.parametrize("raw", ["{", "[1]", ""])
    def test_malformed_op_lines_are_refused(self, raw):
        assert error_code(parse_bridge_op, raw) == "malformed"
        assert error_code(parse_bridge_reply, raw) == "malformed"

    def test_a_sandbox_event_reply(self):
        event = make_event(AssistantText("m1", "hello", 1), seq=4, ts=10.0)
        got = parse_bridge_reply(p.dumps({"kind": "event", "event": event}))
        assert got["event"] == event

    @pytest.mark.parametrize(
        "obj",
        [
            {"kind": "delta", "message_id": "m1", "index": 1, "text": "he"},
            {"kind": "attached", "last_seq": 3},
            {"kind": "ack"},
            {"kind": "pong"},
            {"kind": "error", "message": "busy"},
        ],
    )
    def test_other_replies_pass_through(self, obj):
        assert parse_bridge_reply(json.dumps(obj)) == obj

    @pytest.mark.parametrize(
        "event",
        [
            None,
            "not an event",
            {"type": "sandbox_status", "status": "ready"},  # no seq
            {"seq": "1", "type": "sandbox_status", "status": "ready"},  # seq not an int
        ],
    )
    def test_an_event_reply_needs_an_event_with_an_integer_seq(self, event):
        assert error_code(parse_bridge_reply, json.dumps({"kind": "event", "event": event})) == "bad_event"

    def test_an_event_reply_with_an_invalid_body_is_refused(self):
        bad = {"seq": 1, "ts": 1.0, "type": "sandbox_status", "status": "melting"}
        assert error_code(parse_bridge_reply, json.dumps({"kind": "event", "event": bad})) == "bad_event"

    def test_a_push_op_needs_a_request_id_and_an_author_object(self):
        push = p.bridge_push("r1", {"name": "Ada", "email": "ada@example.test"})
        assert parse_bridge_op(p.dumps(push)) == push
        for bad in ({"op": "push"}, {"op": "push", "request_id": ""}, {"op": "push", "request_id": 5},
                    {"op": "push", "request_id": "r" * 201}, {"op": "push", "request_id": "r1", "author": "ada"}):  # fmt: skip
            assert error_code(parse_bridge_op, json.dumps(bad)) == "bad_request", bad

    @pytest.mark.parametrize(
        "obj",
        [
            {"kind": "ack", "op": "push", "result": "done", "seq": 3},  # which push?
            {"kind": "ack", "op": "push", "request_id": "r1", "result": "pushed", "seq": 3},
            {"kind": "ack", "op": "push", "request_id": "r1", "result": "done", "seq": None},  # where is its event?
            {"kind": "ack", "op": "push", "request_id": "r1", "result": "done", "seq": True},
            {"kind": "ack", "op": "push", "request_id": "r1", "result": "done", "seq": 0},
            {"kind": "ack", "op": "push", "request_id": "r1", "result": "busy", "seq": None, "message": 5},
        ],
    )
    def test_a_push_ack_the_hub_would_wait_on_wrongly_is_refused(self, obj):
        assert error_code(parse_bridge_reply, json.dumps(obj)) == "bad_frame"

    def test_push_acks_that_say_how_it_went_pass(self):
        for obj in ({"kind": "ack", "op": "push", "request_id": "r1", "result": "done", "seq": 3, "message": ""},
                    {"kind": "ack", "op": "push", "request_id": "r1", "result": "busy", "seq": None, "message": "a prompt"}):  # fmt: skip
            assert parse_bridge_reply(json.dumps(obj)) == obj

    @pytest.mark.parametrize("obj", [{"kind": "gossip"}, {"op": "ping"}, {}])
    def test_unknown_reply_kinds_are_refused(self, obj):
        assert error_code(parse_bridge_reply, json.dumps(obj)) == "unknown_kind"


def test_hub_to_client_frames_have_the_documented_shape():
    assert p.subscribed_frame({"id": "s"}, [], False) == {
        "type": "subscribed", "v": p.PROTOCOL_VERSION, "session": {"id": "s"}, "events": [], "has_more": False,
    }  # fmt: skip
    assert p.delta_frame("m1", 2, "lo") == {"type": "delta", "message_id": "m1", "index": 2, "text": "lo"}
    assert p.prompt_accepted_frame("m1", 3, None)["position"] == 3
    assert p.pong_frame() == {"type": "pong"}
    assert p.event_frame({"seq": 1})["event"] == {"seq": 1}
    assert p.dumps({"t": "é"}) == '{"t":"é"}'


def test_dataclass_defaults_do_not_share_state():
    a, b = UserMessage("m1", "x"), UserMessage("m2", "y")
    assert a.author is not b.author
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.text = "changed"  # type: ignore[misc]


class TestProgress:
    def test_a_step_the_protocol_does_not_know_is_refused(self) -> None:
        with pytest.raises(ProtocolError, match="unknown progress step"):
            p.validate_event_body({"type": "sandbox_progress", "step": "mine-bitcoin", "state": "running"})

    def test_a_state_the_protocol_does_not_know_is_refused(self) -> None:
        with pytest.raises(ProtocolError, match="unknown progress step or state"):
            p.validate_event_body({"type": "sandbox_progress", "step": "clone", "state": "half"})
