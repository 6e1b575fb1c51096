"""The chat widget from two threads: the client's stream thread and the kernel's. Every message
to the front end (trait syncs and custom messages) is sent under the widget's lock, and a widget
shows only the session it has open.

No kernel and no server: a recording comm stands in for the kernel's, fake sessions hand the
widget its stream callbacks, and a fake loop holds the throttled re-renders until the test runs
them on the stream thread. Every step is driven by the test, so nothing depends on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

from jupyter_cloudws.widget import controller as chat_module
from jupyter_cloudws.widget.chat import ChatWidget
from jupyter_cloudws.widget.panel import widget_for
from widget.chat_fakes import FakeClient, FakeSession


class RecordingComm(BaseComm):
    """Keeps each message with the thread that sent it and whether it held the widget's lock."""

    def __init__(self, **kwargs: Any) -> None:
        self.widget: ChatWidget | None = None
        self.sent: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:  # fmt: skip
        held = self.widget._lock._is_owned() if self.widget is not None else None  # type: ignore[attr-defined]
        self.sent.append({"msg_type": msg_type, "data": data, "thread": threading.current_thread().name,
                          "held": held})  # fmt: skip


class FrozenClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def monotonic(self) -> float:
        return self.now_s


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[RecordingComm]:
    made: list[RecordingComm] = []

    def create_comm(**kwargs: Any) -> RecordingComm:
        made.append(RecordingComm(**kwargs))
        return made[-1]

    monkeypatch.setattr(comm, "create_comm", create_comm)
    monkeypatch.setattr(chat_module, "time", FrozenClock())  # the render throttle sees no time pass
    return made


def watched(widget: ChatWidget) -> RecordingComm:
    recorder = widget.comm
    assert isinstance(recorder, RecordingComm)
    recorder.widget = widget
    recorder.sent.clear()  # sent while the widget was made, before any other thread knew it
    return recorder


def on_thread(name: str, work: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised on the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and not errors, errors


def ev(seq: int, type_: str, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": 1000.0 + seq, "type": type_, **fields}


def front_end(widget: ChatWidget, **content: Any) -> None:
    widget._on_front_end_message(widget, content, [])


def test_every_message_to_the_front_end_is_sent_under_the_widget_lock_from_either_thread(recording):
    session = FakeSession("a" * 32, "Notes")
    client = FakeClient(session)
    widget = ChatWidget(client, session)  # type: ignore[arg-type]
    recorder = watched(widget)
    (stream,) = session.callbacks

    def first_frames() -> None:
        stream("connection", {"state": "connected", "attempt": 0})
        stream("session", {**widget.session, "status": "running"})
        stream("event", ev(1, "user_message", message_id="m1", text="write notes", author={}))
        stream("event", ev(2, "tool_call", message_id="m1", call_id="c1", tool="Bash",
                           input={"command": "ls"}, status="running"))  # fmt: skip
        stream("delta", {"message_id": "m1", "index": 1, "text": "Writing "})  # rendered at once
        stream("delta", {"message_id": "m1", "index": 1, "text": "**notes**"})  # re-render scheduled

    on_thread("cloudws-stream", first_frames)

    # Meanwhile the user acts in the browser: handled on the kernel's thread.
    front_end(widget, type="send", text="and a README")
    front_end(widget, type="rename", title="Renamed")
    front_end(widget, type="list_sessions", q="")
    front_end(widget, type="typing")
    front_end(widget, type="nonsense")
    assert widget.get_state()["session"]["title"] == "Renamed"

    def rest() -> None:
        for render in client._loop.later:
            render()
        stream("event", ev(3, "assistant_text", message_id="m1", text="Writing **notes**", index=1))
        stream("event", ev(4, "execution_complete", message_id="m1", success=True, usage={}))

    on_thread("cloudws-stream", rest)

    messages = [m for m in recorder.sent if m["msg_type"] == "comm_msg"]
    unlocked = [(m["thread"], m["data"].get("method"), sorted(m["data"].get("state", {})))
                for m in messages if not m["held"]]  # fmt: skip
    assert unlocked == [], f"sent without the widget's lock: {unlocked}"
    # The review's workers (the session's changes, asked on open) send under the lock too.
    by_thread = {m["thread"] for m in messages if not m["thread"].startswith("cloudws-review")}
    assert by_thread == {"cloudws-stream", threading.current_thread().name}, by_thread
    assert session.prompts == ["and a README"]
    assert len(client._loop.later) == 1, "the re-render ran on the stream's loop, not on a timer thread"
    streamed = [item for m in messages if m["data"].get("method") == "custom"
                and m["data"]["content"]["type"] == "upsert" for item in m["data"]["content"]["items"]]  # fmt: skip
    assert [i["streaming"] for i in streamed if i["kind"] == "assistant"] == [True, True, False]
    assert [i["kind"] for i in widget.transcript] == ["user", "tool", "assistant", "result"]


def test_a_render_scheduled_before_close_does_nothing(recording):
    session = FakeSession("a" * 32, "Notes")
    client = FakeClient(session)
    widget = ChatWidget(client, session)  # type: ignore[arg-type]
    (stream,) = session.callbacks
    stream("event", ev(1, "user_message", message_id="m1", text="hi", author={}))
    stream("delta", {"message_id": "m1", "index": 1, "text": "a"})
    stream("delta", {"message_id": "m1", "index": 1, "text": "b"})
    recorder = watched(widget)
    widget.close()
    sent_before = len(recorder.sent)
    (render,) = client._loop.later
    render()
    assert len(recorder.sent) == sent_before and recorder.sent[-1]["msg_type"] == "comm_close"


def test_a_session_shows_its_own_chat_after_its_widget_switched_to_another(recording):
    first, second = FakeSession("a" * 32, "First"), FakeSession("b" * 32, "Second")
    client = FakeClient(first, second)
    widget = widget_for(client, first)
    assert widget_for(client, first) is widget, "one widget per session while it shows that session"

    front_end(widget, type="open_session", id=second.id)  # the picker, in that widget
    assert widget.session["id"] == second.id

    again = widget_for(client, first)
    assert again.session["id"] == first.id and again.session["title"] == "First"
    assert again is not widget


def test_a_late_callback_of_the_session_shown_before_a_switch_changes_nothing(recording):
    first, second = FakeSession("a" * 32, "First"), FakeSession("b" * 32, "Second")
    client = FakeClient(first, second)
    widget = ChatWidget(client, first)  # type: ignore[arg-type]
    (late,) = first.callbacks
    front_end(widget, type="open_session", id=second.id)
    (current,) = second.callbacks
    current("event", ev(1, "user_message", message_id="m9", text="second's prompt", author={}))

    # A frame of the first session that the stream thread was already delivering when the
    # switch happened (its subscription was cancelled, but the call had begun).
    late("event", ev(1, "user_message", message_id="m1", text="first's prompt", author={}))
    late("session", {"id": first.id, "title": "First"})
    late("connection", {"state": "reconnecting", "attempt": 1})

    assert [i["text"] for i in widget.transcript if i["kind"] == "user"] == ["second's prompt"]
    assert widget.session["id"] == second.id and widget.connection.get("state") != "reconnecting"


def test_a_late_callback_from_before_the_same_session_was_opened_again_loses_nothing(recording):
    session = FakeSession("a" * 32, "Notes")
    client = FakeClient(session)
    widget = ChatWidget(client, session)  # type: ignore[arg-type]
    (late,) = session.callbacks
    # The panel opens the session it already shows (%cloudws panel, the output's link): the
    # client hands back the same Session object, with a new subscription that replays everything.
    front_end(widget, type="open_session", id=session.id)
    (_, current) = session.callbacks

    # A frame of the first subscription the stream thread was already delivering...
    late("event", ev(2, "user_message", message_id="m2", text="second prompt", author={}))
    # ...then the new subscription's replay, from the start.
    current("event", ev(1, "user_message", message_id="m1", text="first prompt", author={}))
    current("event", ev(2, "user_message", message_id="m2", text="second prompt", author={}))

    assert [i["text"] for i in widget.transcript if i["kind"] == "user"] == ["first prompt", "second prompt"]
