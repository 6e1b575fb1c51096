"""A session opened in the panel replays its events one callback each; the browser gets them as
a few merged upsert frames, never a frame per event, and never out of order with the rest.

No server: fake sessions hand the panel's controller its stream callbacks, and a fake loop holds
the flush timer until the test fires it, as the client's stream loop would once a burst is over."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jupyter_cloudws.panel import channel as channel_module
from jupyter_cloudws.panel.channel import UPSERT_MAX_ITEMS, PanelChat
from widget.chat_fakes import FakeClient, FakeSession
from widget.held_executor import HeldExecutor


def user(seq: int, mid: str) -> dict[str, Any]:
    return {"seq": seq, "ts": 1000.0 + seq, "type": "user_message", "message_id": mid, "text": f"prompt {mid}",
            "author": {"name": "Ada", "username": "ada"}}  # fmt: skip


def tool(seq: int, mid: str, call: str, status: str = "running") -> dict[str, Any]:
    return {"seq": seq, "ts": 1000.0 + seq, "type": "tool_call", "message_id": mid, "call_id": call,
            "tool": "Bash", "input": {"command": f"echo {call}"}, "status": status}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def monotonic(self) -> float:
        return self.now_s


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(channel_module, "time", frozen)
    return frozen


def open_panel(session: FakeSession) -> tuple[PanelChat, FakeClient, list[dict[str, Any]]]:
    client = FakeClient(session)
    frames: list[dict[str, Any]] = []
    # The review's requests wait on a held executor: no thread of its own writes frames meanwhile.
    chat = PanelChat(client, lambda text: frames.append(json.loads(text)), review_executor=HeldExecutor())
    chat.hello()
    chat.handle_message({"type": "open_session", "id": session.id})
    client._loop.later.clear()  # nothing was upserted yet: only a re-render could be waiting
    frames.clear()
    return chat, client, frames


def upserts(frames: list[dict[str, Any]]) -> list[list[str]]:
    return [[i["id"] for i in f["content"]["items"]] for f in frames
            if f["type"] == "msg" and f["content"]["type"] == "upsert"]  # fmt: skip


def test_a_replayed_burst_reaches_the_browser_as_one_upsert_frame_in_transcript_order(clock):
    session = FakeSession("a" * 32, "Long")
    chat, client, frames = open_panel(session)
    replay = [user(1, "m1")] + [tool(1 + i, "m1", f"c{i}") for i in range(1, 300)]
    replay += [tool(301, "m1", "c1", status="complete")]  # an earlier row changes within the burst
    for event in replay:
        session.callbacks[-1]("event", event)
    assert upserts(frames) == []  # held until the burst is over
    assert len(client._loop.later) == 1  # one flush scheduled for the whole burst

    client._loop.later.pop()()
    [ids] = upserts(frames)
    assert [f["type"] for f in frames] == ["msg", "state"]  # the status the burst led to follows it
    assert frames[1]["changes"]["working"] is True
    assert ids == ["u:m1"] + [f"t:c{i}" for i in range(1, 300)]  # each item once, where it first came
    sent = {i["id"]: i for i in frames[0]["content"]["items"]}
    assert sent["t:c1"]["status"] == "complete"  # its latest version
    assert [i["id"] for i in chat.transcript] == ids


def test_a_state_frame_never_overtakes_the_upserts_made_before_it(clock):
    first, second = FakeSession("a" * 32, "First"), FakeSession("b" * 32, "Second")
    chat, client, frames = open_panel(first)
    client.by_id[second.id] = second
    first.callbacks[-1]("event", user(1, "m1"))
    chat.handle_message({"type": "open_session", "id": second.id})  # resets the transcript to []
    kinds = [(f["type"], f["content"]["type"] if f["type"] == "msg" else sorted(f["changes"])) for f in frames]
    assert kinds[0] == ("msg", "upsert") and frames[0]["content"]["items"][0]["id"] == "u:m1"
    reset = next(i for i, f in enumerate(frames) if f["type"] == "state" and f["changes"].get("transcript") == [])
    assert reset > 0  # the old session's item arrived first, then the reset that clears it


def test_a_long_burst_is_sent_in_bounded_frames_and_a_slow_one_does_not_wait_for_its_end(clock):
    session = FakeSession("a" * 32, "Long")
    chat, client, frames = open_panel(session)
    session.callbacks[-1]("event", user(1, "m1"))
    for i in range(1, UPSERT_MAX_ITEMS + 10):
        session.callbacks[-1]("event", tool(1 + i, "m1", f"c{i}"))
    assert [len(ids) for ids in upserts(frames)] == [UPSERT_MAX_ITEMS]  # full: sent without the timer

    frames.clear()
    clock.now_s += 1.0  # the burst goes on past UPSERT_MAX_WAIT_S: text streaming must stay live
    session.callbacks[-1]("event", tool(UPSERT_MAX_ITEMS + 20, "m1", "late"))
    assert upserts(frames) == [[f"t:c{i}" for i in range(UPSERT_MAX_ITEMS, UPSERT_MAX_ITEMS + 10)] + ["t:late"]]
