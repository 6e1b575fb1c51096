"""The Jupyter server dies under a kernel's client: the stream reports it, reconnects when the
server is back (on the same URL), and the transcript has no gap and no duplicate. When it stays
away, the stream gives up after ``max_attempts`` and the next use starts it again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from client_helpers import Recorder, make_bare_repo, sandboxes_dir, start_server, until
from support import kill_sandboxes

from jupyter_cloudws.client import Client, ConnectionLost, ServerUnreachable
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text, tool_use

WAIT_S = 60


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "server"
    kill_sandboxes(sandboxes_dir(tmp_path / "server"))


def assert_whole(seqs: list[int]) -> None:
    assert seqs == list(range(1, len(seqs) + 1)), f"gap or duplicate in {seqs}"


def test_the_stream_resumes_after_the_server_restarts_mid_prompt(root: Path, tmp_path: Path, fake: FakeAnthropic):
    command = "echo started && sleep 3 && echo finished"
    fake.on("slow job", tool_use("Bash", {"command": command, "timeout": 60000}), text("The slow job is done."))
    repo = make_bare_repo(tmp_path)
    first = start_server(root, fake)
    second = None
    try:
        with Client(first.url, first.token) as client:
            session = client.new_session(repo)
            seen = Recorder()
            session.subscribe(seen)
            message_id = session.prompt("run the slow job")
            until(lambda: any(e["type"] == "tool_call" for e in seen.of("event")), WAIT_S, "the command to start")

            first.kill()
            until(lambda: "reconnecting" in seen.states(), 10, "the stream to notice")
            second = start_server(root, fake, port=first.port)
            session.wait(timeout=WAIT_S)
            events = session.events
    finally:
        first.kill()
        if second is not None:
            second.stop()

    states = seen.states()
    lost_at = states.index("reconnecting")
    assert "connected" in states[:lost_at] and "connected" in states[lost_at:], states
    retries = [c for c in seen.of("connection") if c["state"] == "reconnecting"]
    assert retries[0]["attempt"] == 1 and all(c["max_attempts"] == 5 and c["error"] for c in retries)
    assert "failed" not in states

    assert_whole([e.seq for e in events])
    assert seen.event_seqs() == [e.seq for e in events], "the subscriber saw each event once, in order"
    calls = [(e.call_id, e.status) for e in events if e.type == "tool_call"]
    assert len(calls) == 2 and calls[-1][1] == "completed"
    ends = [e for e in events if e.type == "execution_complete"]
    assert [(e.message_id, e.success) for e in ends] == [(message_id, True)]
    assert [e.text for e in events if e.type == "assistant_text"] == ["The slow job is done."]


def test_the_stream_gives_up_after_max_attempts_and_a_later_use_restarts_it(
    root: Path, tmp_path: Path, fake: FakeAnthropic
):
    fake.on("hello", text("Hello!"))
    repo = make_bare_repo(tmp_path)
    first = start_server(root, fake)
    second = None
    try:
        with Client(first.url, first.token, max_attempts=2, backoff_base_s=0.05) as client:
            session = client.new_session(repo)
            seen = Recorder()
            session.subscribe(seen)
            session.prompt("hello")
            session.wait(timeout=WAIT_S)

            first.kill()
            until(lambda: "failed" in seen.states(), 10, "the stream to give up")
            retries = [c for c in seen.of("connection") if c["state"] == "reconnecting"]
            assert [c["attempt"] for c in retries] == [1, 2]
            failed = seen.of("connection")[-1]
            assert (failed["state"], failed["attempt"], failed["max_attempts"]) == ("failed", 2, 2)
            assert failed["error"]

            # While the server is away, reading and prompting fail with clear errors, not hangs.
            with pytest.raises(ConnectionLost, match="could not follow the session"):
                session.events  # noqa: B018 - reading it restarts the stream
            with pytest.raises(ServerUnreachable):
                session.prompt("hello while down")

            second = start_server(root, fake, port=first.port)
            before = session.events  # restarts the stream, which catches up
            assert seen.states()[-1] == "connected"
            session.prompt("hello again")
            session.wait(timeout=WAIT_S)
            after = session.events
    finally:
        first.kill()
        if second is not None:
            second.stop()
    assert_whole([e.seq for e in after])
    assert [e.seq for e in after[: len(before)]] == [e.seq for e in before]
    assert seen.event_seqs() == [e.seq for e in after]
    assert [e.success for e in after if e.type == "execution_complete"] == [True, True]
