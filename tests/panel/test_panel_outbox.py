"""A browser that stops reading its panel socket holds up its own panel, not the server's
memory: the frames waiting for it stay under ``websocket_outbox_max_bytes`` (plus the frame
being written), and once it reads again it gets every frame, in order, nothing lost."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from support import eventually

from cloudws_sandbox.protocol import ErrorEvent
from jupyter_cloudws.panel.handlers import PanelSocketHandler

OUTBOX_MAX_BYTES = 200_000
EVENT_BYTES = 50_000
EVENTS = 120  # about 6 MB: far past the outbox limit and what the kernel buffers for a stalled reader


@pytest.fixture
def cloudws_config() -> dict[str, Any]:
    return {"websocket_outbox_max_bytes": OUTBOX_MAX_BYTES}


def the_panel_handler() -> PanelSocketHandler:
    found = []
    for o in gc.get_objects():
        try:
            if isinstance(o, PanelSocketHandler) and o.ws_connection is not None:
                found.append(o)
        except ReferenceError:  # a weak proxy whose object is gone: isinstance asks it for its class
            continue
    (handler,) = found
    return handler


def held_bytes(handler: PanelSocketHandler) -> int:
    """What the server holds for the browser: the outbox, and tornado's own write buffer."""
    stream = handler.ws_connection.stream  # type: ignore[union-attr]
    return getattr(handler, "_outbox_bytes", 0) + len(stream._write_buffer)


def sent(chat: Any, n: int) -> bool:
    """The panel's controller has flood event ``n`` and no upsert is left to send."""
    texts = [str(i.get("text") or "") for i in list(chat.transcript)]
    return any(t.startswith(f"flood: flood {n}:") for t in texts) and not chat._upserts


async def test_a_panel_that_stops_reading_holds_a_bounded_outbox_and_then_gets_everything(
    api, open_panel, jp_serverapp, make_repo
):
    session = await api.new_session(make_repo())
    sid = session["id"]
    sock = await open_panel()
    await sock.send({"type": "open_session", "id": sid})
    await sock.until(lambda s: s.state["session"].get("id") == sid and s.state["connection"].get("state") == "connected")
    handler = the_panel_handler()
    # From here the browser reads nothing: tornado's client stops reading the socket while a
    # frame is left unread, and the kernel buffers a few hundred kB at most for it.

    runner = jp_serverapp.web_app.settings["cloudws_hub"].runner(sid)

    def waiting_for_room() -> bool:
        return bool(getattr(getattr(handler, "_room", None), "_waiters", None))

    chat = handler.channel.chat  # type: ignore[union-attr]

    # One event at a time, each seen to go out alone (nothing else comes to merge it with) or
    # held back by a thread waiting for room.
    peak = 0
    for n in range(EVENTS):
        runner.append(ErrorEvent("flood", f"flood {n}:" + "x" * EVENT_BYTES))
        assert await eventually(lambda: waiting_for_room() or sent(chat, n), 30), n  # noqa: B023
        peak = max(peak, held_bytes(handler))
    assert peak <= OUTBOX_MAX_BYTES + 2 * (EVENT_BYTES + 10_000), f"{peak} bytes held for a browser that reads nothing"

    # It reads again: every event arrives, once, in order.
    def floods(s: Any) -> list[int]:
        texts = [str(i.get("text") or "") for i in s.items.values()]
        return [int(t.split(":")[1].split()[1]) for t in texts if t.startswith("flood: flood ")]

    await sock.until(lambda s: len(floods(s)) >= EVENTS, 120)
    assert floods(sock) == list(range(EVENTS))
    assert sock.state["error"] == ""


async def test_closing_a_panel_whose_threads_wait_for_room_ends_them(api, open_panel, jp_serverapp, make_repo):
    import threading

    session = await api.new_session(make_repo())
    sid = session["id"]
    before = {t for t in threading.enumerate() if t.name.startswith(("cloudws-panel", "cloudws-stream"))}
    sock = await open_panel()
    await sock.send({"type": "open_session", "id": sid})
    await sock.until(lambda s: s.state["session"].get("id") == sid and s.state["connection"].get("state") == "connected")
    handler = the_panel_handler()
    started = {t for t in threading.enumerate() if t.name.startswith(("cloudws-panel", "cloudws-stream"))} - before
    runner = jp_serverapp.web_app.settings["cloudws_hub"].runner(sid)
    chat = handler.channel.chat  # type: ignore[union-attr]
    for n in range(EVENTS):  # one at a time, as in the test above; the browser reads nothing
        runner.append(ErrorEvent("flood", f"flood {n}:" + "x" * EVENT_BYTES))
        assert await eventually(lambda: handler._room._waiters or sent(chat, n), 30), n  # type: ignore[attr-defined]  # noqa: B023
        if handler._room._waiters:  # type: ignore[attr-defined]
            break
    assert handler._room._waiters, "nothing waited for room"  # type: ignore[attr-defined]

    sock.close()
    assert await eventually(lambda: not any(t.is_alive() for t in started), 30), [t for t in started if t.is_alive()]
