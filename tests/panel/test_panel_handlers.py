"""The panel's WebSocket refuses what it cannot take, says why, and stays usable; a socket it
was not allowed to open never reaches the hub. (Credentials and authorizers: test_auth.py;
other people's sessions: test_ownership.py.)"""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_cloudws.panel.protocol import MAX_FRAME_BYTES


async def answers(sock, seq: int) -> None:
    """The socket still handles messages: the new-session form's repository list comes back."""
    await sock.send({"type": "github_repos", "q": "", "seq": seq})
    reply = await sock.until(lambda s: next((f["content"] for f in s.frames if f["type"] == "msg"
                                             and f["content"].get("seq") == seq), None), 30)  # fmt: skip
    assert reply["type"] == "github_repos" and reply["configured"] is False


BAD_FRAMES = [
    ("not json", "{'type': 'msg'", "bad_frame"),
    ("not an object", json.dumps(["msg", {"type": "send"}]), "bad_frame"),
    ("no type", json.dumps({"content": {"type": "send"}}), "unknown_type"),
    ("unknown frame type", json.dumps({"type": "subscribe"}), "unknown_type"),
    ("content not an object", json.dumps({"type": "msg", "content": "send"}), "bad_frame"),
    ("unknown message type", json.dumps({"type": "msg", "content": {"type": "exec", "code": "rm -rf /"}}),
     "unknown_type"),
    ("binary", b'{"type": "msg", "content": {"type": "list_sessions"}}', "bad_frame"),
    ("oversized", json.dumps({"type": "msg", "content": {"type": "send", "text": "x" * MAX_FRAME_BYTES}}),
     "too_large"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "code"), [b[1:] for b in BAD_FRAMES], ids=[b[0] for b in BAD_FRAMES])
async def test_a_bad_frame_gets_an_error_frame_and_changes_nothing(open_panel, hub, raw, code):
    sock = await open_panel()
    state = dict(sock.state)
    await sock.send_raw(raw)
    error = await sock.error()
    assert error["code"] == code and error["message"], error
    await answers(sock, 1)
    assert sock.state == state, "a refused frame changed the chat"
    assert hub.store.list_sessions(archived=None) == [] and hub._runners == {}


async def test_a_frame_of_exactly_the_limit_is_read(open_panel):
    sock = await open_panel()
    frame = json.dumps({"type": "msg", "content": {"type": "github_repos", "seq": 7, "q": ""}})
    await sock.send_raw(frame + " " * (MAX_FRAME_BYTES - len(frame)))
    reply = await sock.until(lambda s: next((f for f in s.frames if f["type"] != "hello"), None))
    assert reply["type"] == "msg" and reply["content"]["seq"] == 7


async def test_a_handshake_without_credentials_is_refused(open_panel, hub):
    with pytest.raises(HTTPClientError) as refused:
        await open_panel(headers={"Authorization": "token not-the-server-token"})
    assert refused.value.code in (401, 403)
    assert hub._runners == {}


@pytest.fixture
def hub(jp_serverapp):
    return jp_serverapp.web_app.settings["cloudws_hub"]


@pytest.mark.parametrize("session_id", [".", "..", ""])
async def test_opening_a_dot_session_id_is_refused_clearly(open_panel, session_id):
    """``.`` and ``..`` are path segments an HTTP client resolves (``sessions/.`` is the list):
    a link or a message carrying one must not turn into a request for another resource."""
    sock = await open_panel()
    await sock.send({"type": "open_session", "id": session_id})
    await sock.until(lambda s: s.state["error"])
    assert "not a session id" in sock.state["error"], sock.state["error"]
    assert sock.state["session"] == {}
