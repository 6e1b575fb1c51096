"""The panel's frames, parsed and built without a server (the handler tests drive them live)."""

from __future__ import annotations

import json

import pytest

from jupyter_cloudws.panel import protocol
from jupyter_cloudws.panel.protocol import MAX_FRAME_BYTES, MESSAGE_TYPES, BadFrame, parse_browser_frame

# What chat.js sends through model.send: the panel takes exactly these.
CHAT_JS_MESSAGES = {"send", "stop", "typing", "list_sessions", "open_session", "new_session", "rename", "archive",
                    "diff", "pr_draft", "pr_create", "pr_poll", "github_repos", "github_branches", "warm_repo"}  # fmt: skip


def msg(content: dict) -> str:
    return json.dumps({"type": "msg", "content": content})


def test_every_message_chat_js_sends_is_taken_as_it_came() -> None:
    assert MESSAGE_TYPES == CHAT_JS_MESSAGES
    for kind in sorted(CHAT_JS_MESSAGES):
        content = {"type": kind, "text": "héllo <b>", "seq": 3}
        assert parse_browser_frame(msg(content)) == content


def test_only_actions_need_write() -> None:
    writes = {kind for kind in CHAT_JS_MESSAGES if protocol.needs_write({"type": kind})}
    assert writes == {"send", "stop", "typing", "new_session", "rename", "archive", "pr_create", "warm_repo"}


def test_the_limit_counts_utf8_bytes_not_characters() -> None:
    padding = MAX_FRAME_BYTES - len(msg({"type": "send", "text": ""}))
    assert parse_browser_frame(msg({"type": "send", "text": "x" * padding}))["type"] == "send"
    with pytest.raises(BadFrame) as refused:  # half as many characters, two bytes each: one byte over
        parse_browser_frame(msg({"type": "send", "text": "é" * (padding // 2 + 1)}))
    assert refused.value.code == "too_large" and str(MAX_FRAME_BYTES) in refused.value.message


def test_server_frames_are_compact_json_and_keep_text_as_is() -> None:
    text = protocol.dumps(protocol.msg_frame({"type": "upsert", "items": [{"id": "a:1:0", "html": "<p>é</p>"}]}))
    assert text == '{"type":"msg","content":{"type":"upsert","items":[{"id":"a:1:0","html":"<p>é</p>"}]}}'
    assert json.loads(protocol.dumps(protocol.state_frame({"working": True}))) == {"type": "state",
                                                                                  "changes": {"working": True}}
    assert BadFrame("bad_frame", "why").to_frame() == {"type": "error", "code": "bad_frame", "message": "why"}
