"""Kernel code drives sessions through ``jupyter_cloudws.client``: create, list, rename, archive,
prompt and wait, read the transcript as objects, stop, and follow the stream with a callback.

One real jupyter-server subprocess for the module; sandboxes run the real Claude Code CLI
against the scripted fake API.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from client_helpers import Recorder, make_bare_repo, serving, until
from support import git

from jupyter_cloudws.client import (
    BadRepo,
    Client,
    CloudwsError,
    Event,
    NotAuthorized,
    PromptFailed,
    SessionArchived,
    UnknownSession,
)
from cloudws_sandbox.protocol import AssistantText, ExecutionComplete, ToolCall
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text, tool_use, turn
from jupyter_cloudws.testing.server import ServerProcess

WAIT_S = 60
REPLAY_LIMIT = 3


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client-sessions")


@pytest.fixture(scope="module")
def server(root: Path, fake: FakeAnthropic) -> Iterator[ServerProcess]:
    # A small replay limit makes every catch-up page through `has_more`.
    with serving(root / "server", fake, replay_limit=REPLAY_LIMIT) as proc:
        yield proc


@pytest.fixture(scope="module")
def repo(root: Path) -> Path:
    return make_bare_repo(root, "project")


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token) as client:
        yield client


def test_sessions_round_trip(client: Client, repo: Path, root: Path) -> None:
    session = client.new_session(repo, title="Client round trip")
    assert (session.repo, session.title, session.status, session.archived) == (str(repo), "Client round trip",
                                                                                "idle", False)  # fmt: skip
    assert session.branch == f"cloudws/{session.id[:8]}" and session.base_branch == ""
    assert session.sandbox_status == "stopped" and session.created_at <= session.updated_at <= time.time()
    assert repr(session) == f"<cloudws.Session {session.id[:8]} 'Client round trip' on {repo} (idle)>"

    # One object per session: listing and looking up give back the same one.
    assert session in client.sessions()
    assert client.session(session.id) is session
    assert client.sessions(q="round trip") == [session]
    assert client.sessions(q="no such title") == []

    assert session.rename("Renamed by the kernel") is session
    assert session.title == "Renamed by the kernel"
    assert client.sessions(q="Renamed by") == [session]

    session.archive()
    assert session.archived and session not in client.sessions()
    assert session in client.sessions(archived=True) and session in client.sessions(archived=None)
    with pytest.raises(SessionArchived) as caught:
        session.prompt("hello")
    assert (caught.value.status, caught.value.code) == (409, "archived")
    session.unarchive()
    assert not session.archived and session in client.sessions()

    other_repo = make_bare_repo(root, "other")
    other = client.new_session(str(other_repo), model="claude-test-model")
    assert other.title == "other" and other.model == "claude-test-model"
    recent = client.recent_repos()
    assert recent[0] == str(other_repo) and str(repo) in recent and len(recent) == len(set(recent))
    assert client.recent_repos(limit=1) == [str(other_repo)]
    assert session.refresh() is session and session.title == "Renamed by the kernel"


def test_hub_errors_become_exceptions_with_the_hubs_code(client: Client, server: ServerProcess) -> None:
    with pytest.raises(UnknownSession) as caught:
        client.session("no-such-session")
    assert isinstance(caught.value, CloudwsError)
    assert (caught.value.status, caught.value.code) == (404, "unknown_session")
    assert "no-such-session" in caught.value.message

    with pytest.raises(BadRepo) as bad:
        client.new_session(Path(tempfile.gettempdir()) / "no-such-repository.git")
    assert (bad.value.status, bad.value.code) == (400, "bad_repo")
    assert "not a git repository" in str(bad.value)
    with pytest.raises(BadRepo) as outside:
        client.new_session("/no/such/repository.git")
    assert (outside.value.status, outside.value.code) == (400, "repo_outside_roots")
    with pytest.raises(CloudwsError) as relative:
        client.new_session("relative/path")
    assert relative.value.code == "bad_repo"
    with pytest.raises(CloudwsError) as secret:
        client.new_session("https://user:hunter2@example.test/repo.git")
    assert secret.value.code == "credentials_in_url" and "hunter2" not in str(secret.value)

    with Client(server.url, "wrong-token") as stranger:
        with pytest.raises(NotAuthorized) as denied:
            stranger.status()
    assert denied.value.status == 403


def test_prompt_wait_and_the_transcript_as_objects(client: Client, repo: Path, fake: FakeAnthropic) -> None:
    fake.on(
        "make a greeting file",
        [text("I'll create it."), tool_use("Bash", {"command": "echo 'hello from claude' > greeting.txt"})],
        text("Created **greeting.txt**."),
    )
    session = client.new_session(repo, title="Greeting")
    message_id = session.prompt("Please make a greeting file")
    assert isinstance(message_id, str) and message_id
    session.wait(timeout=WAIT_S)

    events = session.events
    assert all(isinstance(e, Event) for e in events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "no gap, no duplicate"
    assert events[0].type == "user_message" and events[0].text == "Please make a greeting file"
    calls = [e for e in events if e.type == "tool_call"]
    assert all(isinstance(c.body, ToolCall) for c in calls)
    assert [(c.tool, c.status) for c in calls] == [("Bash", "running"), ("Bash", "completed")]
    assert calls[0].call_id == calls[1].call_id and calls[1].input["command"].startswith("echo 'hello")
    texts = [e for e in events if e.type == "assistant_text"]
    assert all(isinstance(t.body, AssistantText) for t in texts)
    assert [t.text for t in texts] == ["I'll create it.", "Created **greeting.txt**."]
    end = events[-1]
    assert isinstance(end.body, ExecutionComplete) and end.type == "execution_complete"
    assert (end.message_id, end.success, end.interrupted) == (message_id, True, False)
    assert isinstance(end.ts, float) and end.ts > 0
    assert repr(end) == f"<Event {end.seq} execution_complete ok>"
    with pytest.raises(AttributeError, match="no field 'nope'"):
        end.nope  # noqa: B018 - the attribute access is the test
    # Every event the prompt caused carries its message id.
    assert {e.message_id for e in events if e.type in ("tool_call", "assistant_text", "git")} == {message_id}

    until(lambda: session.status == "idle" and session.sandbox_status == "ready", what="session frames")
    git_event = next(e for e in events if e.type == "git")
    assert git("--git-dir", session.repo, "show", f"{session.branch}:greeting.txt") == "hello from claude"
    assert git_event.pushed and git_event.branch == session.branch

    # Nothing of its own pending: wait() has nothing to wait for and returns at once.
    started = time.monotonic()
    session.wait(timeout=5)
    assert time.monotonic() - started < 1


def test_wait_raises_prompt_failed_on_an_api_error(client: Client, repo: Path, fake: FakeAnthropic) -> None:
    session = client.new_session(repo, title="Doomed")
    fake.fail_next(500)
    message_id = session.prompt("this prompt meets an API error")
    with pytest.raises(PromptFailed) as caught:
        session.wait(timeout=WAIT_S)
    assert caught.value.message_id == message_id
    assert "500" in caught.value.error and message_id in str(caught.value), caught.value.error
    end = session.events[-1]
    assert (end.type, end.success, end.interrupted) == ("execution_complete", False, False)
    # The failure was reported once; the session takes the next prompt.
    session.prompt("hello after the failure")
    session.wait(timeout=WAIT_S)


def test_stop_ends_a_long_command_and_wait_returns_promptly(
    client: Client, server: ServerProcess, repo: Path, fake: FakeAnthropic
) -> None:
    fake.on("long job", tool_use("Bash", {"command": "echo busy && sleep 30 && echo done", "timeout": 60000}),
            text("Finished."))  # fmt: skip
    session = client.new_session(repo, title="Long job")
    message_id = session.prompt("run the long job")
    until(lambda: any(e.type == "tool_call" and e.status == "running" for e in session.events), WAIT_S,
          "the command to start")  # fmt: skip

    # Another kernel's handle has sent nothing: its wait() follows the running prompt.
    with Client(server.url, server.token) as other_client:
        watcher = other_client.session(session.id)
        assert watcher is not session
        with pytest.raises(TimeoutError, match=message_id):
            watcher.wait(timeout=0.5)
        stopped_at = time.monotonic()
        session.stop()
        session.wait(timeout=20)  # interrupted is not a failure
        watcher.wait(timeout=20)
    assert time.monotonic() - stopped_at < 10, "Stop must not wait for the 30 s sleep"
    end = session.events[-1]
    assert (end.type, end.message_id, end.success, end.interrupted) == ("execution_complete", message_id,
                                                                        False, True)  # fmt: skip


def test_subscribers_get_each_event_once_in_order_and_the_deltas(
    client: Client, repo: Path, fake: FakeAnthropic
) -> None:
    fake.on("write a poem", turn(text("Roses are red, violets are blue, this poem streams word by word to you."),
                                 delay_s=0.01))  # fmt: skip
    session = client.new_session(repo, title="Poem")
    early = Recorder()
    unsubscribe_early = session.subscribe(early)
    message_id = session.prompt("write a poem")
    session.wait(timeout=WAIT_S)
    events = session.events
    until(lambda: len(early.of("event")) == len(events), 10, "the subscriber to catch up")

    assert early.event_seqs() == [e.seq for e in events] == list(range(1, len(events) + 1))
    assert early.of("event") == [e.data for e in events]
    assert early.states()[:2] == ["connecting", "connected"]
    deltas = early.of("delta")
    assert deltas and {d["message_id"] for d in deltas} == {message_id}
    poem = next(e for e in events if e.type == "assistant_text")
    assert "".join(d["text"] for d in deltas if d["index"] == poem.index).strip() == poem.text
    # The session dicts follow the session: running while the prompt runs, idle after.
    until(lambda: [s["status"] for s in early.of("session")][-1] == "idle", 10, "the idle session frame")
    assert "running" in [s["status"] for s in early.of("session")] and session.status == "idle"
    assert early.threads and threading.current_thread().name not in early.threads

    # A late subscriber gets the transcript so far first, then live events, each once.
    late = Recorder()
    session.subscribe(late)
    until(lambda: len(late.of("event")) == len(events), 10, "the replay to the late subscriber")
    assert [k for k, _ in late.calls[:2]] == ["connection", "session"]
    unsubscribe_early()
    before = len(early.calls)
    session.prompt("write a poem")
    session.wait(timeout=WAIT_S)
    final = session.events
    until(lambda: len(late.of("event")) == len(final), 10, "live events to the late subscriber")
    assert late.event_seqs() == list(range(1, len(final) + 1))
    assert len(early.calls) == before, "an unsubscribed callback hears nothing more"


def test_a_failing_callback_does_not_stop_the_stream(client: Client, repo: Path, fake: FakeAnthropic) -> None:
    session = client.new_session(repo, title="Broken widget")

    def broken(kind: str, payload: dict) -> None:
        raise RuntimeError("a widget bug")

    session.subscribe(broken)
    good = Recorder()
    session.subscribe(good)
    session.prompt("hello")
    session.wait(timeout=WAIT_S)
    until(lambda: good.event_seqs() == [e.seq for e in session.events], 10, "the good subscriber")


def test_a_fresh_client_pages_through_a_long_transcript(client: Client, server: ServerProcess, repo: Path) -> None:
    session = client.new_session(repo, title="Paging")
    session.prompt("hello")
    session.wait(timeout=WAIT_S)
    known = session.events
    assert len(known) > 2 * REPLAY_LIMIT, "the catch-up takes several pages"

    with Client(server.url, server.token) as fresh:
        again = fresh.session(session.id).events
    assert [e.data for e in again] == [e.data for e in known]


def test_a_prompt_retried_after_a_lost_answer_is_queued_once(server: ServerProcess, repo: Path) -> None:
    class LoseFirstPromptAnswer(httpx.BaseTransport):
        """The hub gets the first prompt POST, but its answer is lost on the way back."""

        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()
            self.prompt_posts = 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            if request.url.path.endswith("/prompts"):
                self.prompt_posts += 1
                if self.prompt_posts == 1:
                    response.read()
                    response.close()
                    raise httpx.ReadError("connection reset while reading the answer", request=request)
            return response

    transport = LoseFirstPromptAnswer()
    with Client(server.url, server.token, http_transport=transport) as client:
        session = client.new_session(repo, title="Flaky network")
        message_id = session.prompt("hello")
        session.wait(timeout=WAIT_S)
        events = session.events
    assert transport.prompt_posts == 2
    assert [e.message_id for e in events if e.type == "user_message"] == [message_id]
    assert len([e for e in events if e.type == "execution_complete"]) == 1


def test_pings_keep_an_idle_stream_connected(server: ServerProcess, repo: Path) -> None:
    # A hub that answered no ping would be taken as gone after two intervals.
    with Client(server.url, server.token, ping_interval_s=0.2) as client:
        session = client.new_session(repo, title="Idle")
        seen = Recorder()
        session.subscribe(seen)
        time.sleep(1.5)
    assert seen.states() == ["connecting", "connected"]


def test_usable_from_code_running_inside_an_event_loop(client: Client, repo: Path) -> None:
    """A kernel runs cells inside its own asyncio loop: the client must not need that loop."""
    session = client.new_session(repo, title="In a loop")

    async def cell() -> list[Event]:
        session.prompt("hello")
        session.wait(timeout=WAIT_S)
        return session.events

    events = asyncio.run(cell())
    assert events[-1].type == "execution_complete" and events[-1].success


def test_wait_refuses_to_run_in_a_subscriber_callback(client: Client, repo: Path) -> None:
    session = client.new_session(repo, title="Callback")
    errors: list[BaseException] = []

    def impatient(kind: str, payload: dict) -> None:
        if kind == "session" and not errors:
            try:
                session.wait(timeout=1)
            except RuntimeError as exc:
                errors.append(exc)

    session.subscribe(impatient)
    until(lambda: errors, 10, "the callback to run")
    assert "subscriber callback" in str(errors[0])


def test_close_ends_the_stream_thread(server: ServerProcess, repo: Path) -> None:
    def stream_threads() -> int:
        return sum(t.name == "cloudws-stream" and t.is_alive() for t in threading.enumerate())

    before = stream_threads()
    client = Client(server.url, server.token)
    session = client.new_session(repo, title="Closing")
    assert session.events == []
    assert stream_threads() == before + 1
    client.close()
    assert stream_threads() == before
    with pytest.raises(RuntimeError, match="closed"):
        session.prompt("too late")


def test_a_start_up_step_reads_at_a_glance() -> None:
    from jupyter_cloudws.client.events import Event

    event = Event.from_dict({"seq": 4, "ts": 1.0, "type": "sandbox_progress", "step": "clone", "state": "done",
                             "elapsed_ms": 812, "detail": "", "output": ""})  # fmt: skip
    assert repr(event) == "<Event 4 sandbox_progress clone done 812 ms>"
    assert (event.step, event.state, event.elapsed_ms) == ("clone", "done", 812)
