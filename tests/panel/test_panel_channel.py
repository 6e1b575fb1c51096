"""The panel's channel, end to end: a real jupyter-server with the extension, a WebSocket client
as the browser, the real Claude Code CLI in a local sandbox against the scripted fake API.

The panel runs the notebook chat's controller inside the server: what the browser gets is the
widget's state and messages as frames (docs/protocol.md, "The panel")."""

from __future__ import annotations

import threading

from support import eventually

from jupyter_cloudws import __version__
from jupyter_cloudws.testing.fake_anthropic import text, tool_use, turn
from jupyter_cloudws.widget.controller import ChatController
from jupyter_cloudws.widget.markdown import PYGMENTS_CSS


PANEL_THREAD_PREFIXES = ("cloudws-panel", "cloudws-review", "cloudws-stream")


def panel_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(PANEL_THREAD_PREFIXES) and t.is_alive()}


def synced_traits() -> set[str]:
    return set(ChatController.class_trait_names(sync=True))


async def test_the_hello_frame_carries_the_whole_state_and_the_css(open_panel):
    sock = await open_panel()
    hello = sock.frames[0]
    assert hello["version"] == __version__ and hello["css"] == PYGMENTS_CSS
    assert set(hello["state"]) == synced_traits()
    # No session is open: the panel starts on the picker, with the server's isolation for the badge.
    assert hello["state"]["view"] == "sessions" and hello["state"]["session"] == {}
    assert hello["state"]["sessions"] == [] and hello["state"]["error"] == ""
    assert hello["state"]["isolation"] != ""


async def test_a_session_created_over_rest_is_listed_and_opens_with_its_transcript(
    api, open_panel, make_repo, fake_anthropic
):
    fake_anthropic.on("say hello", text("Hello **there**."))
    session = await api.new_session(make_repo(), title="Made over REST")
    done = await api.prompt(session["id"], "Please say hello")
    await api.wait_until_complete(session["id"], done["message_id"])

    sock = await open_panel()
    await sock.send({"type": "list_sessions", "q": ""})
    listed = await sock.until(lambda s: s.state["sessions"])
    assert [(s["id"], s["title"]) for s in listed] == [(session["id"], "Made over REST")]

    await sock.send({"type": "open_session", "id": session["id"]})
    await sock.until(lambda s: any(i["kind"] == "result" for i in s.items.values()))
    assert sock.state["session"]["id"] == session["id"] and sock.state["view"] == "chat"
    kinds = [i["kind"] for i in sock.items.values()]
    assert kinds[0] == "user" and "assistant" in kinds
    answer = next(i for i in sock.items.values() if i["kind"] == "assistant")
    assert "<strong>there</strong>" in answer["html"]
    # The transcript streamed as upserts, after a reset of the state's transcript to empty.
    assert any(f["type"] == "msg" and f["content"]["type"] == "upsert" for f in sock.frames)


async def test_a_prompt_sent_through_the_panel_streams_a_tool_row_and_markdown(
    api, open_panel, make_repo, fake_anthropic
):
    fake_anthropic.on(
        "make a note",
        tool_use("Bash", {"command": "echo noted > note.txt"}),
        turn(text("I wrote **note.txt**."), delay_s=0.02),
    )  # fmt: skip
    session = await api.new_session(make_repo())
    sock = await open_panel()
    await sock.send({"type": "open_session", "id": session["id"]})
    await sock.until(lambda s: s.state["session"].get("id") == session["id"])
    await sock.send({"type": "send", "text": "Please make a note"})

    def finished(s):  # the result's upsert comes first, then the state it leads to
        return any(i["kind"] == "result" for i in s.items.values()) and not s.state["working"]

    await sock.until(finished, 120)
    tools = [i for i in sock.items.values() if i["kind"] == "tool"]
    assert [(t["tool"], t["status"]) for t in tools] == [("Bash", "completed")]
    assert "echo noted" in tools[0]["input"]
    answer = [i for i in sock.items.values() if i["kind"] == "assistant"]
    assert answer[-1]["html"].count("<strong>note.txt</strong>") == 1 and answer[-1]["streaming"] is False
    assert sock.state["error"] == ""
    events = await api.events(session["id"])
    assert [e["text"] for e in events if e["type"] == "user_message"] == ["Please make a note"]


async def test_stop_through_the_panel_ends_a_long_command(api, open_panel, make_repo, fake_anthropic):
    command = "echo waiting && sleep 60 && echo waited"
    fake_anthropic.on("wait a minute", tool_use("Bash", {"command": command, "timeout": 120000}), text("Waited."))
    session = await api.new_session(make_repo())
    sock = await open_panel()
    await sock.send({"type": "open_session", "id": session["id"]})
    await sock.until(lambda s: s.state["session"].get("id") == session["id"])
    await sock.send({"type": "send", "text": "Please wait a minute"})
    await sock.until(lambda s: any(i["kind"] == "tool" and i["status"] == "running" for i in s.items.values()), 120)
    assert sock.state["working"] is True

    await sock.send({"type": "stop"})
    await sock.until(lambda s: not s.state["working"], 30)
    results = [i for i in sock.items.values() if i["kind"] == "result"]
    assert [r["success"] for r in results] == [False]
    complete = [e for e in await api.events(session["id"]) if e["type"] == "execution_complete"]
    assert [e["interrupted"] for e in complete] == [True]


async def test_closing_the_socket_ends_the_controllers_threads(api, open_panel, make_repo):
    before = panel_threads()
    session = await api.new_session(make_repo())
    sock = await open_panel()
    await sock.send({"type": "open_session", "id": session["id"]})
    await sock.until(lambda s: s.state["session"].get("id") == session["id"] and s.state["connection"].get(
        "state") == "connected")
    started = panel_threads() - before
    # The worker, the stream's loop thread and a review worker (the session's changes).
    assert {t.name.split("_")[0] for t in started} >= {"cloudws-panel", "cloudws-stream", "cloudws-review"}

    sock.close()
    assert await eventually(lambda: not (panel_threads() & started), 10), panel_threads() & started
