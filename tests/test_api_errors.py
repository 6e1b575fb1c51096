"""Bad input gets a clear error, with the right status and code, and loses nothing.

Errors are JSON ``{"code": ..., "message": ...}`` over REST and ``{"type": "error", "code": ...}``
frames over the WebSocket, which stays open after one. Most tests never start a sandbox; the event
logs they page through are seeded through the hub. One test runs the real CLI to fill the queue.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from cloudws_sandbox.protocol import SandboxStatusEvent
from jupyter_cloudws.testing.fake_anthropic import text, tool_use

MAX_PROMPT_BYTES = 1000
REPLAY_LIMIT = 3


@pytest.fixture
def cloudws_config() -> dict[str, Any]:
    return {"max_queue_length": 1, "replay_limit": REPLAY_LIMIT, "max_prompt_bytes": MAX_PROMPT_BYTES}


@pytest.fixture
def hub(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["cloudws_hub"]


@pytest.fixture
def session(api, make_repo, jp_asyncio_loop) -> dict[str, Any]:
    """A session made over REST that never ran anything."""
    return jp_asyncio_loop.run_until_complete(api.new_session(make_repo(), title="Target"))


def assert_error(result: tuple[int, Any], status: int, code: str | None = None) -> dict[str, Any]:
    got_status, body = result
    assert got_status == status, body
    assert isinstance(body, dict) and set(body) == {"code", "message"}, body
    assert isinstance(body["message"], str) and body["message"], body
    if code is not None:
        assert body["code"] == code, body
    return body


def seed_events(hub: Any, session_id: str, count: int) -> list[dict[str, Any]]:
    """Log ``count`` events as the hub does (stored, then published to live subscribers)."""
    runner = hub.runner(session_id)
    return [runner.append(SandboxStatusEvent("stopped", f"note {n}")) for n in range(count)]


async def nothing_happened(api, hub, session_id: str) -> None:
    assert await api.events(session_id) == []
    assert hub.store.active_prompts(session_id) == []
    code, now = await api.get(f"sessions/{session_id}")
    assert (code, now["status"], now["sandbox_status"]) == (200, "idle", "stopped")


# -- creating sessions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "bad_request"),
        ({"repo": None}, "bad_request"),
        ({"repo": 42}, "bad_request"),
        ({"repo": ["/srv/x.git"]}, "bad_request"),
        ({"repo": "   "}, "bad_request"),
        ({"repo": "{not_git}"}, "bad_repo"),
        ({"repo": "file://{not_git}"}, "bad_repo"),
        ({"repo": "{not_git}/missing"}, "bad_repo"),
        ({"repo": "relative/path/project.git"}, "bad_repo"),
        ({"repo": "project.git"}, "bad_repo"),
        ({"repo": "ftp://example.test/x.git"}, "bad_repo"),
        ({"repo": "{good}", "title": 7}, "bad_request"),
        ({"repo": "{good}", "title": "t" * 201}, "bad_request"),
        ({"repo": "{good}", "model": ["opus"]}, "bad_request"),
        ({"repo": "{good}", "base_branch": {"name": "main"}}, "bad_request"),
    ],
    ids=lambda v: v if isinstance(v, str) else json.dumps(v)[:40],
)
async def test_creating_a_session_with_a_bad_body_is_refused(api, make_repo, tmp_path: Path, body, code):
    not_git = tmp_path / "plain-directory"
    not_git.mkdir()
    (not_git / "README.md").write_text("not a repository\n")
    names = {"not_git": str(not_git), "good": str(make_repo())}
    body = {k: v.format(**names) if isinstance(v, str) else v for k, v in body.items()}
    assert_error(await api.post("sessions", body), 400, code)
    assert (await api.get("sessions", archived="all")) == (200, {"sessions": []})


@pytest.mark.parametrize(
    "repo",
    [
        "https://someone:ghp_S3cretT0ken@example.test/org/x.git",
        "https://ghp_S3cretT0ken@example.test/org/x.git",
        "http://someone:ghp_S3cretT0ken@example.test/x.git",
        "ssh://git:ghp_S3cretT0ken@example.test/x.git",
    ],
)
async def test_credentials_in_a_repo_url_are_refused_without_echoing_them(api, caplog, repo):
    caplog.set_level(logging.DEBUG)
    code, body = await api.post("sessions", {"repo": repo})
    assert_error((code, body), 400, "credentials_in_url")
    assert "S3cretT0ken" not in json.dumps(body)
    assert "S3cretT0ken" not in caplog.text, "the token went into the server log"
    assert (await api.get("sessions", archived="all")) == (200, {"sessions": []})


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "sessions"), ("PATCH", "sessions/{sid}"), ("POST", "sessions/{sid}/prompts")],
)
@pytest.mark.parametrize(
    "raw_body", ["{not json", '{"repo": ', "[]", '["text", "hi"]', '"hello"', "null", "42", b"\xff\xfe{}"],
    ids=["garbage", "truncated", "empty-array", "array", "string", "null", "number", "not-utf8"],
)
async def test_a_body_that_is_not_a_json_object_is_malformed(api, hub, session, method, path, raw_body):
    result = await api.call(method, path.format(sid=session["id"]), raw_body)
    assert_error(result, 400, "malformed")
    assert (await api.get("sessions")) == (200, {"sessions": [session]}), "nothing created or changed"
    await nothing_happened(api, hub, session["id"])


# -- unknown sessions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "sessions/{sid}", None),
        ("PATCH", "sessions/{sid}", {"title": "New title"}),
        ("PATCH", "sessions/{sid}", {"archived": True}),
        ("POST", "sessions/{sid}/prompts", {"text": "hello"}),
        ("POST", "sessions/{sid}/stop", {}),
        ("GET", "sessions/{sid}/events", None),
    ],
    ids=lambda v: v if isinstance(v, str) else json.dumps(v),
)
@pytest.mark.parametrize("sid", ["0123456789abcdef0123456789abcdef", "no-such-session", "%2E%2E"])
async def test_an_unknown_session_is_a_404(api, hub, session, method, path, body, sid):
    result = await api.call(method, path.format(sid=sid), body)
    assert_error(result, 404, "unknown_session")
    assert (await api.get("sessions", archived="all")) == (200, {"sessions": [session]})
    assert set(hub._runners) <= {session["id"]}, "no runner for a session that does not exist"


async def test_a_websocket_to_an_unknown_session_is_refused_with_404(open_socket, session):
    with pytest.raises(HTTPClientError) as refused:
        await open_socket("0123456789abcdef0123456789abcdef")
    assert refused.value.code == 404


# -- changing sessions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"owner": "mallory"},
        {"repo": "/elsewhere.git"},
        {"title": "Fine", "branch": "main"},  # one bad field refuses the whole change
        {"title": ""},
        {"title": "   "},
        {"title": None},
        {"title": 12},
        {"title": "t" * 201},
        {"archived": "true"},
        {"archived": 1},
        {"archived": None},
        {"title": "Fine", "archived": "yes"},
    ],
    ids=lambda v: json.dumps(v)[:40],
)
async def test_a_bad_change_is_refused_and_the_session_is_unchanged(api, hub, session, body):
    assert_error(await api.patch(f"sessions/{session['id']}", body), 400, "bad_request")
    assert (await api.get(f"sessions/{session['id']}")) == (200, session)
    await nothing_happened(api, hub, session["id"])


async def test_sessions_are_listed_newest_first_filtered_and_changed(api, make_repo):
    zebra, yak = make_repo("zebra"), make_repo("yak")
    s1 = await api.new_session(zebra, title="Fix login bug")
    s2 = await api.new_session(yak, title="Add login page")
    s3 = await api.new_session(yak, title="login_page 100% polish")
    assert s1["title"] == "Fix login bug" and s1["repo"] == str(zebra) and not s1["archived"]

    async def listed(**params: str) -> list[str]:
        code, body = await api.get("sessions", **params)
        assert code == 200, body
        return [s["id"] for s in body["sessions"]]

    ids = {s["id"]: name for name, s in (("s1", s1), ("s2", s2), ("s3", s3))}

    async def names(**params: str) -> list[str]:
        return [ids[i] for i in await listed(**params)]

    assert await names() == ["s3", "s2", "s1"], "newest first"
    assert await names(q="login") == ["s3", "s2", "s1"]
    assert await names(q="LOGIN") == ["s3", "s2", "s1"]
    assert await names(q="bug") == ["s1"], "by title"
    assert await names(q="zebra") == ["s1"], "by repository"
    assert await names(q="yak") == ["s3", "s2"]
    assert await names(q="login_page") == ["s3"], "'_' is a character, not a wildcard"
    assert await names(q="%") == ["s3"], "'%' is a character, not a wildcard"
    assert await names(q="nothing-like-this") == []
    assert await names(q="") == ["s3", "s2", "s1"]

    code, archived = await api.patch(f"sessions/{s2['id']}", {"archived": True})
    assert code == 200 and archived["archived"] is True and archived["title"] == "Add login page"
    assert await names() == ["s3", "s1"]
    assert await names(archived="false") == ["s3", "s1"]
    assert await names(archived="true") == ["s2"]
    assert await names(archived="1") == ["s2"]
    assert await names(archived="TRUE") == ["s2"]
    assert await names(archived="all") == ["s3", "s2", "s1"]
    assert await names(archived="true", q="yak") == ["s2"]
    assert await names(archived="true", q="zebra") == []
    for bad in ("maybe", "yes", "2", "none"):
        assert_error(await api.get("sessions", archived=bad), 400, "bad_request")

    code, renamed = await api.patch(f"sessions/{s1['id']}", {"title": "  Fix the sign-in flow  "})
    assert code == 200 and renamed["title"] == "Fix the sign-in flow" and renamed["repo"] == str(zebra)
    assert (await api.get(f"sessions/{s1['id']}")) == (200, renamed)
    assert await names(q="sign-in") == ["s1"]
    assert await names(q="bug") == []

    code, back = await api.patch(f"sessions/{s2['id']}", {"archived": False, "title": "Add the login page"})
    assert code == 200 and back["archived"] is False and back["title"] == "Add the login page"
    assert await names() == ["s3", "s2", "s1"]
    assert await names(archived="true") == []


# -- prompts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "bad_request"),
        ({"text": ""}, 400, "bad_request"),
        ({"text": " \n\t "}, 400, "bad_request"),
        ({"text": None}, 400, "bad_request"),
        ({"text": 5}, 400, "bad_request"),
        ({"text": ["hi"]}, 400, "bad_request"),
        ({"text": "hi", "client_request_id": "r" * 201}, 400, "bad_request"),
        ({"text": "hi", "client_request_id": 7}, 400, "bad_request"),
        ({"text": "hi", "model": {"name": "opus"}}, 400, "bad_request"),
        ({"text": "x" * (MAX_PROMPT_BYTES + 1)}, 413, "prompt_too_large"),
        ({"text": "é" * (MAX_PROMPT_BYTES // 2 + 1)}, 413, "prompt_too_large"),  # counted in UTF-8 bytes
        ({"text": "x" * 100_000}, 413, "prompt_too_large"),
    ],
    ids=lambda v: v if isinstance(v, (str, int)) else json.dumps(v)[:30],
)
async def test_a_bad_prompt_is_refused_and_nothing_is_queued(api, hub, session, body, status, code):
    error = assert_error(await api.post(f"sessions/{session['id']}/prompts", body), status, code)
    if code == "prompt_too_large":
        assert str(MAX_PROMPT_BYTES) in error["message"], "the message names the limit"
    await nothing_happened(api, hub, session["id"])


async def test_a_prompt_to_an_archived_session_is_a_conflict(api, hub, open_socket, session):
    code, archived = await api.patch(f"sessions/{session['id']}", {"archived": True})
    assert code == 200 and archived["archived"] is True
    assert_error(await api.post(f"sessions/{session['id']}/prompts", {"text": "hello"}), 409, "archived")

    sock = await open_socket(session["id"])
    await sock.send({"type": "prompt", "text": "hello", "client_request_id": "ws-1"})
    frame = await sock.recv()
    assert (frame["type"], frame["code"]) == ("error", "archived"), frame
    await sock.send({"type": "ping"})
    assert await sock.recv() == {"type": "pong"}
    assert hub.store.active_prompts(session["id"]) == []
    assert await api.events(session["id"]) == []


async def test_a_full_queue_refuses_a_prompt_and_loses_none_of_the_earlier_ones(api, hub, session, fake_anthropic):
    busy = "echo busy && sleep 3 && echo done"
    fake_anthropic.on("keep busy", tool_use("Bash", {"command": busy, "timeout": 60000}), text("Was busy."))
    fake_anthropic.on("second prompt", text("Second done."))
    fake_anthropic.on("third prompt", text("Third done."))
    sid = session["id"]

    first = await api.prompt(sid, "Please keep busy for a while")
    await api.wait_for_event(sid, lambda e: e["type"] == "tool_call" and e["status"] == "running", timeout_s=60)
    # Exactly at the size limit (multi-byte characters count as their UTF-8 bytes): accepted.
    second_text = "the second prompt "
    second_text += "é" * ((MAX_PROMPT_BYTES - len(second_text.encode())) // 2)
    second_text += "." * (MAX_PROMPT_BYTES - len(second_text.encode()))
    assert len(second_text.encode()) == MAX_PROMPT_BYTES
    second = await api.prompt(sid, second_text, client_request_id="second-1")
    assert second["position"] == 1 and second["duplicate"] is False

    refused = assert_error(await api.post(f"sessions/{sid}/prompts", {"text": "the third prompt"}), 429, "queue_full")
    assert "1" in refused["message"]
    # A retry of the queued prompt is not a new prompt: it is answered, not refused.
    again = await api.prompt(sid, second_text, client_request_id="second-1")
    assert (again["message_id"], again["duplicate"]) == (second["message_id"], True)

    first_done = await api.wait_until_complete(sid, first["message_id"], timeout_s=60)
    second_done = await api.wait_until_complete(sid, second["message_id"], timeout_s=60)
    assert first_done["success"] is True and second_done["success"] is True

    events = await api.events(sid)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    asked = [e["text"] for e in events if e["type"] == "user_message"]
    assert asked == ["Please keep busy for a while", second_text], "both ran once, the refused one never"
    assert not any("third prompt" in json.dumps(r["body"]) for r in fake_anthropic.main_requests())
    assert [e["message_id"] for e in events if e["type"] == "execution_complete"] == [
        first["message_id"], second["message_id"]]  # fmt: skip
    assert hub.store.active_prompts(sid) == []
    # The queue has room again.
    code, body = await api.get(f"sessions/{sid}")
    assert body["status"] == "idle"

    # The real log pages over REST without gaps or doubles, whatever the page size.
    for limit in (1, 2, 5):
        paged, after = [], 0
        while True:
            code, page = await api.get(f"sessions/{sid}/events", after=after, limit=limit)
            assert code == 200 and len(page["events"]) <= min(limit, REPLAY_LIMIT)
            paged += page["events"]
            if not page["has_more"]:
                break
            after = page["events"][-1]["seq"]
        assert paged == events


# -- events over REST ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{"after": "-1"}, {"after": "abc"}, {"after": "1.5"}, {"after": ""}, {"limit": "0"}, {"limit": "-3"},
     {"limit": "many"}, {"after": "2", "limit": "0"}],  # fmt: skip
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)
async def test_bad_paging_arguments_are_refused(api, session, params):
    assert_error(await api.get(f"sessions/{session['id']}/events", **params), 400, "bad_request")


async def test_events_page_over_rest_without_gaps_or_doubles(api, hub, session):
    seeded = seed_events(hub, session["id"], 8)
    assert [e["seq"] for e in seeded] == list(range(1, 9))
    path = f"sessions/{session['id']}/events"

    assert (await api.get(path)) == (200, {"events": seeded[:3], "has_more": True}), "replay_limit caps a page"
    assert (await api.get(path, limit=100)) == (200, {"events": seeded[:3], "has_more": True})
    assert (await api.get(path, after=6)) == (200, {"events": seeded[6:], "has_more": False})
    assert (await api.get(path, after=8)) == (200, {"events": [], "has_more": False})
    assert (await api.get(path, after=1000)) == (200, {"events": [], "has_more": False})

    for limit in (1, 2, 3):
        pages, after = [], 0
        while True:
            code, page = await api.get(path, after=after, limit=limit)
            assert code == 200 and 0 < len(page["events"]) <= limit
            pages.append(page)
            if not page["has_more"]:
                break
            after = page["events"][-1]["seq"]
        seqs = [e["seq"] for p in pages for e in p["events"]]
        assert seqs == list(range(1, 9)), (limit, seqs)
        assert len(pages) == -(-8 // limit)


# -- the WebSocket -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "malformed"),
        ("", "malformed"),
        ("[]", "malformed"),
        ('[{"type": "ping"}]', "malformed"),
        ('"ping"', "malformed"),
        ("null", "malformed"),
        (b"\xff\xfe\xfd", "malformed"),
        ({"type": "dance"}, "unknown_type"),
        ({"kind": "ping"}, "unknown_type"),
        ({"type": None}, "unknown_type"),
        ({"type": "prompt"}, "bad_request"),
        ({"type": "prompt", "text": ""}, "bad_request"),
        ({"type": "prompt", "text": "  \n "}, "bad_request"),
        ({"type": "prompt", "text": 42}, "bad_request"),
        ({"type": "prompt", "text": "hi", "client_request_id": "r" * 201}, "bad_request"),
        ({"type": "prompt", "text": "hi", "model": 3}, "bad_request"),
        ({"type": "subscribe", "after": -1}, "bad_request"),
        ({"type": "subscribe", "after": "0"}, "bad_request"),
        ({"type": "subscribe", "after": True}, "bad_request"),
        ({"type": "subscribe", "after": 1.5}, "bad_request"),
        ({"type": "prompt", "text": "x" * (MAX_PROMPT_BYTES + 1)}, "prompt_too_large"),
        ({"type": "prompt", "text": "é" * (MAX_PROMPT_BYTES // 2 + 1)}, "prompt_too_large"),
        ({"type": "prompt", "text": "x" * (3 * MAX_PROMPT_BYTES + 4096)}, "too_large"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else repr(v)[:30],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_socket_lives_on(api, hub, open_socket, session, frame, code):
    sock = await open_socket(session["id"])
    if isinstance(frame, bytes):
        await sock.conn.write_message(frame, binary=True)
    else:
        await sock.send(frame if isinstance(frame, str) else json.dumps(frame))
    error = await sock.recv()
    assert error["type"] == "error" and error["code"] == code, error
    assert isinstance(error.get("message"), str) and error["message"]
    await sock.send({"type": "ping"})
    assert await sock.recv() == {"type": "pong"}, "the connection lives on"
    await sock.send({"type": "subscribe"})
    subscribed = await sock.recv()
    assert subscribed["type"] == "subscribed" and subscribed["events"] == []
    await nothing_happened(api, hub, session["id"])


async def test_subscribe_pages_through_a_long_log_without_gaps_or_doubles(api, hub, open_socket, session):
    sid = session["id"]
    seed_events(hub, sid, 8)
    sock = await open_socket(sid)

    async def subscribe(**fields: Any) -> dict[str, Any]:
        await sock.send({"type": "subscribe", **fields})
        frame = await sock.recv()
        assert frame["type"] == "subscribed", frame
        assert frame["session"]["id"] == sid
        return frame

    first = await subscribe(after=0)
    assert [e["seq"] for e in first["events"]] == [1, 2, 3] and first["has_more"] is True
    # While the replay is incomplete nothing live is sent: it would leave a gap.
    seed_events(hub, sid, 1)  # seq 9
    await sock.send({"type": "ping"})
    assert await sock.recv() == {"type": "pong"}, "no live event before the client caught up"

    got, frame = list(first["events"]), first
    while frame["has_more"]:
        frame = await subscribe(after=got[-1]["seq"])
        assert 0 < len(frame["events"]) <= REPLAY_LIMIT
        got += frame["events"]
    assert [e["seq"] for e in got] == list(range(1, 10)), "every event once, in order"
    assert got == (await api.events(sid))

    # Caught up: now live events follow, each once.
    (tenth,) = seed_events(hub, sid, 1)
    assert await sock.recv() == {"type": "event", "event": tenth}
    await sock.send({"type": "ping"})
    assert await sock.recv() == {"type": "pong"}

    # Without 'after': the newest page, older ones exist, and live events follow.
    latest = await subscribe()
    assert [e["seq"] for e in latest["events"]] == [8, 9, 10] and latest["has_more"] is True
    (eleventh,) = seed_events(hub, sid, 1)
    assert await sock.recv() == {"type": "event", "event": eleventh}
    await sock.send({"type": "ping"})
    assert await sock.recv() == {"type": "pong"}, "one subscription at a time: no doubled event"

    # Subscribing after the newest seq replays nothing and stays live.
    tail = await subscribe(after=11)
    assert tail["events"] == [] and tail["has_more"] is False
    (twelfth,) = seed_events(hub, sid, 1)
    assert await sock.recv() == {"type": "event", "event": twelfth}

    # Paging again from a seq in the middle continues from there.
    middle = await subscribe(after=5)
    assert [e["seq"] for e in middle["events"]] == [6, 7, 8] and middle["has_more"] is True
