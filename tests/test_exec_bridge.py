"""The bridge over an exec'd process's stdio — how Modal, docker exec or kubectl exec reach a
sandbox — carries a whole session just as the local socket does."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_cloudws.testing.fake_anthropic import text, tool_use


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    jp_server_config["LocalBackend"] = {"bridge": "exec"}
    return jp_server_config


async def test_a_session_runs_over_an_exec_stdio_bridge(api, open_socket, make_repo, fake_anthropic):
    fake_anthropic.on("make notes", tool_use("Bash", {"command": "echo noted > notes.txt"}), text("Noted."))
    fake_anthropic.on("again", text("Again."))
    session = await api.new_session(make_repo())
    sock = await open_socket(session["id"])
    await sock.send({"type": "subscribe"})
    await sock.recv()
    first = await api.prompt(session["id"], "make notes")
    await api.wait_until_complete(session["id"], first["message_id"])
    second = await api.prompt(session["id"], "again")
    done = await api.wait_until_complete(session["id"], second["message_id"])
    assert done["success"]

    events = await api.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["text"] for e in events if e["type"] == "assistant_text"] == ["Noted.", "Again."]
    assert [e["status"] for e in events if e["type"] == "tool_call"] == ["running", "completed"]
    # Deltas cross the exec bridge too.
    await sock.until(lambda f: f["type"] == "event" and f["event"]["type"] == "execution_complete"
                     and f["event"]["message_id"] == second["message_id"])  # fmt: skip
    assert any(f["type"] == "delta" for f in sock.frames)
