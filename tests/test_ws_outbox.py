"""A WebSocket client that does not keep up is dropped once its outbox passes a size in bytes,
with a close code, and picks up from its last seq: the hub's memory stays bounded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cloudws_sandbox.protocol import ErrorEvent
from jupyter_cloudws.handlers import CLOSE_TOO_SLOW, outbox_admits

OUTBOX_MAX_BYTES = 200_000
EVENT_BYTES = 50_000


@pytest.fixture
def cloudws_config() -> dict[str, Any]:
    return {"websocket_outbox_max_bytes": OUTBOX_MAX_BYTES}


async def test_a_slow_client_is_dropped_with_a_close_code_and_resumes_from_its_seq(
    api, open_socket, jp_serverapp, make_repo
):
    session = await api.new_session(make_repo())
    sid = session["id"]
    sock = await open_socket(sid)
    await sock.send({"type": "subscribe", "after": 0})
    assert (await sock.recv())["type"] == "subscribed"

    # Forty big events at once, faster than any client reads (nothing runs in between): about
    # ten times the outbox limit, though only frames of 50 kB each.
    runner = jp_serverapp.web_app.settings["cloudws_hub"].runner(sid)
    for n in range(40):
        runner.append(ErrorEvent("flood", f"{n}:" + "x" * EVENT_BYTES))

    got: list[int] = []
    while (raw := await asyncio.wait_for(sock.conn.read_message(), 30)) is not None:
        sock.frames.append(json.loads(raw))
        got += [f["event"]["seq"] for f in sock.frames[-1:] if f["type"] == "event"]
    assert sock.conn.close_code == CLOSE_TOO_SLOW
    assert got == list(range(1, len(got) + 1)) and len(got) < 40, "dropped part-way, nothing out of order"

    again = await open_socket(sid)
    await again.send({"type": "subscribe", "after": got[-1] if got else 0})
    rest = await again.recv()
    assert [e["seq"] for e in rest["events"]] == list(range(len(got) + 1, 41)), "the rest, once each"


@pytest.mark.parametrize(
    ("pending_bytes", "size_bytes", "replay", "admitted"),
    [
        (0, 100, False, True),
        (150_000, 100_000, False, False),  # a live frame past the limit: the client is dropped
        (0, 900_000, True, True),  # the replay it asked for, alone, may pass the limit
        (1, 900_000, True, False),  # but not on top of frames still waiting: re-subscribing
        (900_000, 900_000, True, False),  # without reading would grow the outbox for ever
    ],
)
def test_what_the_outbox_admits(pending_bytes: int, size_bytes: int, replay: bool, admitted: bool) -> None:
    assert outbox_admits(pending_bytes, size_bytes, OUTBOX_MAX_BYTES, replay=replay) is admitted
