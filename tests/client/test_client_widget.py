"""The chat widget's kernel side, driven the way its front end drives it (custom messages), against
a real server, the real Claude Code CLI and the fake API: what state a browser would render."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from client_helpers import make_bare_repo, serving, until

from jupyter_cloudws.client import Client
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text, tool_use, turn
from jupyter_cloudws.testing.server import ServerProcess
from jupyter_cloudws.widget import ChatWidget
from jupyter_cloudws.widget.panel import widget_for
from jupyter_cloudws.widget.transcript import Transcript

WAIT_S = 60


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        fake.on(
            "write the notes",
            tool_use("Write", {"file_path": "notes.md", "content": "# Notes\n"}),
            tool_use("Read", {"file_path": "notes.md"}),
            turn(text("Wrote **notes.md**:\n\n| file | ok |\n|---|---|\n| notes.md | yes |"), delay_s=0.02),
        )
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake: FakeAnthropic) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("widget") / "server", fake) as proc:
        yield proc


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token) as client:
        yield client


class SentMessages:
    """What the widget sent to its front end."""

    def __init__(self, widget: ChatWidget) -> None:
        self.messages: list[dict[str, Any]] = []
        widget.send = lambda content, buffers=None: self.messages.append(content)  # type: ignore[method-assign]

    def upserted(self) -> list[dict[str, Any]]:
        return [item for m in self.messages if m["type"] == "upsert" for item in m["items"]]


def front_end(widget: ChatWidget, **content: Any) -> None:
    widget._on_front_end_message(widget, content, [])


def test_a_prompt_from_the_widget_fills_its_transcript(client: Client, tmp_path: Path) -> None:
    session = client.new_session(str(make_bare_repo(tmp_path)), title="Notes")
    widget = ChatWidget(client, session)
    sent = SentMessages(widget)
    assert widget.session["title"] == "Notes" and widget.view == "chat" and widget.transcript == []
    assert widget.isolation == "bubblewrap", "the badge says how the sandbox is isolated"

    front_end(widget, type="send", text="Please write the notes")
    until(lambda: any(i["kind"] == "result" for i in widget.transcript), WAIT_S, "the prompt's result")

    kinds = [i["kind"] for i in widget.transcript]
    assert kinds == ["user", "progress", "tool", "tool", "assistant", "git", "result"]
    tools = [i for i in widget.transcript if i["kind"] == "tool"]
    assert [(t["tool"], t["summary"], t["status"]) for t in tools] == [
        ("Write", "notes.md", "completed"), ("Read", "notes.md", "completed"),
    ]  # fmt: skip
    answer = next(i for i in widget.transcript if i["kind"] == "assistant")
    assert "<table>" in answer["html"] and "<strong>notes.md</strong>" in answer["html"]
    assert answer["streaming"] is False
    result = widget.transcript[-1]
    assert result["success"] and result["cost_usd"] is not None and result["duration_ms"] > 0
    assert widget.working is False and widget.sandbox_status == "ready"

    # Changes travelled as small upserts; text streamed in (rendered partially) before its final form.
    assert all(m["type"] in ("upsert", "view") for m in sent.messages)
    streamed = [i for i in sent.upserted() if i["id"] == answer["id"] and i["streaming"]]
    assert streamed, "the answer was shown while it streamed"
    # Each event changed one or two items, and only those travelled: a resend of the whole
    # transcript would carry up to all six items in one message.
    sizes = [len(m["items"]) for m in sent.messages if m["type"] == "upsert"]
    assert max(sizes) <= 2, sizes
    assert sum(sizes) < 2 * len(sizes), "most upserts carry a single item"


def test_a_second_display_of_a_session_is_the_same_model_with_the_whole_history(client: Client, tmp_path: Path):
    session = client.new_session(str(make_bare_repo(tmp_path)))
    session.prompt("Please write the notes")
    session.wait(timeout=WAIT_S)
    first = widget_for(client, session)
    assert widget_for(client, session) is first
    until(lambda: len(first.transcript) == 7, WAIT_S, "the replayed transcript")
    # What a reload gets from the kernel (the serialized state), against a transcript folded
    # here from the session's own events: a state that lagged or missed an item would differ.
    expected = Transcript()
    for event in session.events:
        expected.apply(event.data)
    state = json.loads(json.dumps(first.get_state()["transcript"]))
    assert [i["kind"] for i in state] == ["user", "progress", "tool", "tool", "assistant", "git", "result"]
    assert state == json.loads(json.dumps(expected.items)), "a reload gets every item from the kernel"


def test_the_picker_new_session_form_rename_and_archive(client: Client, tmp_path: Path):
    repo = str(make_bare_repo(tmp_path, "picker"))
    widget = ChatWidget(client)
    SentMessages(widget)
    assert widget.view == "sessions" and widget.session == {}

    front_end(widget, type="new_session", repo=repo, title="From the form", model="haiku", base_branch="")
    assert widget.error == ""
    assert widget.session["title"] == "From the form" and widget.session["model"] == "haiku"
    assert widget.view == "chat"

    front_end(widget, type="rename", title="Renamed inline")
    assert widget.session["title"] == "Renamed inline"
    assert client.session(widget.session["id"]).refresh().title == "Renamed inline"

    front_end(widget, type="list_sessions", q="Renamed inline")
    assert [s["title"] for s in widget.sessions] == ["Renamed inline"]
    assert repo in widget.recent_repos

    sid = widget.session["id"]
    front_end(widget, type="archive")
    assert widget.session == {} and widget.view == "sessions"
    assert sid not in [s["id"] for s in widget.sessions]
    assert client.session(sid).refresh().archived is True


def test_bad_input_from_the_front_end_shows_an_error_and_loses_nothing(client: Client, tmp_path: Path):
    widget = ChatWidget(client)
    SentMessages(widget)
    front_end(widget, type="send", text="hello")
    assert "no session is open" in widget.error
    front_end(widget, type="new_session", repo=str(tmp_path / "not-a-repo"))
    assert "not a git repository" in widget.error and widget.session == {}
    front_end(widget, type="open_session", id="0" * 32)
    assert "no session" in widget.error
    front_end(widget, type="list_sessions")
    assert widget.error == "", "the next good action clears the error"


def test_the_chat_shows_reconnecting_then_catches_up_when_the_server_comes_back(
    tmp_path: Path, fake: FakeAnthropic
) -> None:
    with serving(tmp_path / "server", fake) as server:
        # Attempts 1, 2, 4, 8 and 8 s apart: room for a server that restarts slowly on a busy machine.
        with Client(server.url, server.token, backoff_base_s=1.0) as client:
            session = client.new_session(str(make_bare_repo(tmp_path)))
            widget = ChatWidget(client, session)
            SentMessages(widget)
            until(lambda: widget.connection.get("state") == "connected", WAIT_S, "the stream")

            server.kill()
            until(lambda: widget.connection.get("state") == "reconnecting", WAIT_S, "reconnecting")
            state = widget.connection
            assert state["attempt"] >= 1 and state["max_attempts"] == 5, state

            server.start(port=server.port)  # back on the same address, as after a restart
            until(lambda: widget.connection.get("state") == "connected", WAIT_S, "connected again")
            session.prompt("Please write the notes")
            until(lambda: any(i["kind"] == "result" for i in widget.transcript), WAIT_S, "the prompt's result")
            assert [i["kind"] for i in widget.transcript] == ["user", "progress", "tool", "tool", "assistant", "git", "result"]


def test_choosing_a_repository_in_the_form_warms_it_once_and_never_shows_an_error(client: Client, tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    repo = str(make_bare_repo(tmp_path, "warm"))
    widget = ChatWidget(client)
    SentMessages(widget)
    answers: list[Any] = []
    real_warm = client.warm

    def spy(repo: str, base_branch: str | None = None) -> dict[str, Any]:
        try:
            answers.append(real_warm(repo, base_branch))
        except Exception as exc:
            answers.append(exc)
            raise
        return answers[-1]

    monkeypatch.setattr(client, "warm", spy)
    widget.error = "an earlier problem"
    front_end(widget, type="warm_repo", repo=repo, base_branch="")
    front_end(widget, type="warm_repo", repo=f" {repo} ", base_branch="")  # again at once: not sent
    assert len(answers) == 1 and set(answers[0]) == {"started", "status", "id"}, answers
    front_end(widget, type="warm_repo", repo=str(tmp_path / "half-typed"), base_branch="")
    assert "not a git repository" in str(answers[1]), answers
    assert widget.error == "an earlier problem", "a warm-up neither shows nor clears an error"
