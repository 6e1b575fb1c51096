"""The conversation stays when the sandbox goes: a real jupyter-server, local sandboxes running the
real Claude Code CLI against the fake API. The fake records every request, so a test sees what
the model received after the sandbox was replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import eventually, kill_sandboxes

from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text

REMEMBER = "Please remember the word pelican"
RECALL = "Now: which word did I ask you to remember?"


def script(fake: FakeAnthropic) -> None:
    fake.on("remember the word", text("I will remember **pelican**."))
    fake.on("which word", text("The word was pelican."))


def assert_model_got_the_earlier_turn(fake: FakeAnthropic) -> None:
    sent = repr(fake.main_requests()[-1]["body"]["messages"])
    assert RECALL in sent
    assert REMEMBER in sent and "I will remember **pelican**." in sent, "the earlier turn went back to the model"


async def session_that_was_asked_to_remember(api: Any, make_repo: Any, fake: FakeAnthropic) -> str:
    """A new session whose first prompt asked the agent to remember a word; its id."""
    script(fake)
    sid = (await api.new_session(make_repo()))["id"]
    first = await api.prompt(sid, REMEMBER)
    assert (await api.wait_until_complete(sid, first["message_id"]))["success"] is True
    return sid


def sandbox_statuses(events: list[dict]) -> list[str]:
    return [e["status"] for e in events if e["type"] == "sandbox_status"]


@pytest.mark.parametrize("cloudws_config", [{"sandbox_idle_timeout_s": 0.5}])
async def test_after_an_idle_stop_the_model_gets_the_earlier_turns(api, make_repo, fake_anthropic):
    sid = await session_that_was_asked_to_remember(api, make_repo, fake_anthropic)
    await api.wait_for_event(sid, lambda e: e["type"] == "sandbox_status" and e["status"] == "stopped", 30)

    second = await api.prompt(sid, RECALL)
    assert (await api.wait_until_complete(sid, second["message_id"]))["success"] is True
    assert_model_got_the_earlier_turn(fake_anthropic)
    events = await api.events(sid)
    assert sandbox_statuses(events).count("spawning") == 2
    assert not [e for e in events if e["type"] == "error"], "the conversation resumed without a note"


async def test_after_a_sandbox_died_the_next_one_resumes_the_conversation(
    api, make_repo, fake_anthropic, cloudws_data_dir: Path
):
    sid = await session_that_was_asked_to_remember(api, make_repo, fake_anthropic)

    kill_sandboxes(cloudws_data_dir)  # the daemon, its agent, everything: as if the machine lost it
    await api.wait_for_event(sid, lambda e: e["type"] == "sandbox_status" and e["status"] == "failed", 30)

    second = await api.prompt(sid, RECALL)
    assert (await api.wait_until_complete(sid, second["message_id"]))["success"] is True
    assert_model_got_the_earlier_turn(fake_anthropic)
    assert sandbox_statuses(await api.events(sid)).count("spawning") == 2


async def test_archiving_deletes_the_sandbox_and_keeps_the_conversation_for_after_unarchiving(
    api, make_repo, fake_anthropic, cloudws_data_dir: Path
):
    sid = await session_that_was_asked_to_remember(api, make_repo, fake_anthropic)

    await api.patch(f"sessions/{sid}", {"archived": True})
    await api.wait_for_event(sid, lambda e: e["type"] == "sandbox_status" and e["status"] == "stopped", 30)
    sandboxes = cloudws_data_dir / "sandboxes"
    assert await eventually(lambda: not any(sandboxes.iterdir()), 10), f"left behind: {list(sandboxes.iterdir())}"

    await api.patch(f"sessions/{sid}", {"archived": False})
    second = await api.prompt(sid, RECALL)
    assert (await api.wait_until_complete(sid, second["message_id"]))["success"] is True
    assert_model_got_the_earlier_turn(fake_anthropic)

