"""Messages a browser sends while its panel's worker is busy (a slow request) wait in order, up
to a bound: past it a message is refused with a ``busy`` error at once, so a browser or script
that floods the socket cannot grow the server's memory without end. No server: the channel
with a client whose start blocks until the test lets it go."""

from __future__ import annotations

import json
import threading
from typing import Any

from jupyter_cloudws.panel.channel import MAX_QUEUED_MESSAGES, PanelChannel


def test_messages_past_the_bound_are_refused_while_the_worker_is_busy_and_the_rest_are_kept() -> None:
    release = threading.Event()
    frames: list[dict[str, Any]] = []

    def slow_client() -> Any:
        release.wait(30)  # the worker is busy until the test says so
        raise RuntimeError("no client in this test")

    channel = PanelChannel(slow_client, lambda text: frames.append(json.loads(text)))
    try:
        admitted = [channel.submit({"type": "list_sessions", "q": str(n)}) for n in range(MAX_QUEUED_MESSAGES + 5)]
        assert admitted == [True] * MAX_QUEUED_MESSAGES + [False] * 5
        release.set()
        done = threading.Event()
        channel._worker.submit(done.set)  # after every message queued before it
        assert done.wait(30)
        # Every admitted message was handled (here: told the chat did not start); room again.
        assert sum(f.get("code") == "unavailable" for f in frames) == 1 + MAX_QUEUED_MESSAGES
        assert channel.submit({"type": "list_sessions"}) is True
    finally:
        release.set()
        channel.close()
