"""A kernel's client that the hub drops for falling behind (close code 4008) reconnects from
its last seq: the transcript is whole, each event once, in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from client_helpers import Recorder, make_bare_repo, serving

from jupyter_cloudws.client import Client
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text, tool_use

WAIT_S = 60


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


def test_a_client_dropped_as_too_slow_resumes_from_its_seq_and_misses_nothing(tmp_path: Path, fake: FakeAnthropic):
    fake.on("list files", tool_use("Bash", {"command": "ls"}), text("Listed them."))
    repo = make_bare_repo(tmp_path)
    # An outbox of one byte: every live frame finds the client "too far behind".
    with serving(tmp_path / "server", fake, websocket_outbox_max_bytes=1) as server:
        with Client(server.url, server.token, backoff_base_s=0.05) as client:
            session = client.new_session(repo)
            seen = Recorder()
            session.subscribe(seen)
            message_id = session.prompt("list files")
            session.wait(timeout=WAIT_S)
            events = session.events
        with server.client() as http:
            logged = http.get(f"/sessions/{session.id}/events", params={"limit": 1000}).json()["events"]

    retries = [c for c in seen.of("connection") if c["state"] == "reconnecting"]
    assert retries and all("4008" in (c["error"] or "") for c in retries), retries
    assert "failed" not in seen.states()
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)) and seqs == [e["seq"] for e in logged]
    assert seen.event_seqs() == seqs, "the subscriber saw each event once, in order"
    assert [(e.message_id, e.success) for e in events if e.type == "execution_complete"] == [(message_id, True)]
