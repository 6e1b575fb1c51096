"""Whatever bytes arrive, the parsers answer with a frame or a ProtocolError, never a crash."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudws_sandbox.protocol import (
    CLIENT_FRAME_TYPES,
    ProtocolError,
    parse_bridge_op,
    parse_bridge_reply,
    parse_client_frame,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
# Frames that look almost right: a known or near-known type with random fields.
near_frames = st.fixed_dictionaries(
    {"type": st.sampled_from([*CLIENT_FRAME_TYPES, "Prompt", "", "event"])},
    optional={"text": json_values, "after": json_values, "client_request_id": json_values, "model": json_values},
)
near_ops = st.fixed_dictionaries(
    {"op": st.sampled_from(["attach", "prompt", "interrupt", "ping", "shutdown", "bogus"])},
    optional={"after": json_values, "message_id": json_values, "text": json_values},
)
near_replies = st.fixed_dictionaries(
    {"kind": st.sampled_from(["event", "delta", "attached", "ack", "pong", "error", "nope"])},
    optional={"event": json_values | st.fixed_dictionaries({"seq": json_values, "type": json_values})},
)
raw = st.text(max_size=200) | st.binary(max_size=200)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def answers_cleanly(parse, payload) -> None:
    try:
        parse(payload)
    except ProtocolError as exc:
        assert exc.code and exc.message
        assert exc.to_frame()["type"] == "error"


@FUZZ
@given(raw | near_frames.map(json.dumps) | json_values.map(json.dumps))
def test_client_frames(payload):
    answers_cleanly(lambda p: parse_client_frame(p, max_prompt_bytes=1000), payload)


@FUZZ
@given(raw | near_ops.map(json.dumps))
def test_bridge_ops(payload):
    answers_cleanly(parse_bridge_op, payload)


@FUZZ
@given(raw | near_replies.map(json.dumps))
def test_bridge_replies(payload):
    answers_cleanly(parse_bridge_reply, payload)


@FUZZ
@given(st.text(max_size=300))
def test_a_prompt_of_any_text_is_accepted_or_refused_by_size(text):
    frame = json.dumps({"type": "prompt", "text": text})
    try:
        parsed = parse_client_frame(frame, max_prompt_bytes=200)
    except ProtocolError as exc:
        assert exc.code in ("bad_request", "prompt_too_large")
        assert not text.strip() or len(text.encode()) > 200
    else:
        assert parsed.text == text
