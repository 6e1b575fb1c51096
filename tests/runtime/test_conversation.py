"""The session's agent conversation on disk: which agent session to resume, and its transcript
moved to where Claude Code looks for the new sandbox's work tree."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cloudws_sandbox.conversation import STATE_FILE, Conversation, config_dir, has_messages, project_slug

AGENT_ID = "0a64d78a-c776-412b-98ac-172bfe165476"
TRANSCRIPT = '{"type":"user","message":{"role":"user","content":"remember pelican"}}\n'


def test_project_slug_follows_the_cli() -> None:
    # Read off the real CLI (docs/claude-code-cli.md): a run in this cwd wrote its transcript there.
    assert project_slug("/tmp/idle-exp/run/work.a_b c") == "-tmp-idle-exp-run-work-a-b-c"
    assert project_slug("/data/sandboxes/local-1234abcd-9f/box/repo") == "-data-sandboxes-local-1234abcd-9f-box-repo"
    assert project_slug("/" + "x" * 199) is not None
    assert project_slug("/" + "x" * 200) is None, "past 200 characters the CLI appends a hash we do not compute"


def test_config_dir_is_the_clis() -> None:
    assert config_dir({"CLAUDE_CONFIG_DIR": "/conv/s1", "HOME": "/home/u"}) == Path("/conv/s1")
    assert config_dir({"HOME": "/home/u"}) == Path("/home/u/.claude")


def test_the_agent_session_id_is_saved_atomically_and_read_back(tmp_path: Path) -> None:
    conversation = Conversation(tmp_path / "conv", "/work")
    assert conversation.saved_id is None
    conversation.save(AGENT_ID)
    assert json.loads((tmp_path / "conv" / STATE_FILE).read_text()) == {"agent_session_id": AGENT_ID}
    assert os.listdir(tmp_path / "conv") == [STATE_FILE], "no temporary file left behind"
    assert Conversation(tmp_path / "conv", "/elsewhere").saved_id == AGENT_ID, "a later sandbox reads it"
    conversation.save(None)
    assert Conversation(tmp_path / "conv", "/work").saved_id is None


def test_a_garbled_or_hostile_state_file_is_ignored(tmp_path: Path) -> None:
    for content in ("{not json", "[]", '{"agent_session_id": "--dangerous-flag"}', '{"agent_session_id": 7}'):
        (tmp_path / STATE_FILE).write_text(content)
        assert Conversation(tmp_path, "/work").saved_id is None, content


def test_the_transcript_moves_to_the_project_dir_of_the_new_cwd(tmp_path: Path) -> None:
    old = tmp_path / "projects" / "-old-sandbox-repo"
    old.mkdir(parents=True)
    (old / f"{AGENT_ID}.jsonl").write_text(TRANSCRIPT)
    (old / AGENT_ID / "subagents").mkdir(parents=True)  # the CLI keeps side files next to it
    conversation = Conversation(tmp_path, "/new/sandbox/repo")
    assert conversation.prepare_resume(AGENT_ID) is None
    new = tmp_path / "projects" / "-new-sandbox-repo"
    assert (new / f"{AGENT_ID}.jsonl").read_text() == TRANSCRIPT
    assert (new / AGENT_ID / "subagents").is_dir()
    assert not (old / f"{AGENT_ID}.jsonl").exists(), "one copy only: the CLI's scan of projects/*/ stays unambiguous"
    assert conversation.prepare_resume(AGENT_ID) is None, "ready already: nothing to do"


def test_the_newest_of_several_transcripts_wins(tmp_path: Path) -> None:
    for name, text, mtime in (("-a", TRANSCRIPT, 1000), ("-b", TRANSCRIPT + TRANSCRIPT, 2000)):
        (tmp_path / "projects" / name).mkdir(parents=True)
        path = tmp_path / "projects" / name / f"{AGENT_ID}.jsonl"
        path.write_text(text)
        os.utime(path, (mtime, mtime))
    assert Conversation(tmp_path, "/c").prepare_resume(AGENT_ID) is None
    assert (tmp_path / "projects" / "-c" / f"{AGENT_ID}.jsonl").read_text() == TRANSCRIPT + TRANSCRIPT


def test_a_missing_or_empty_transcript_is_reported_not_resumed(tmp_path: Path) -> None:
    conversation = Conversation(tmp_path, "/work")
    assert conversation.prepare_resume(AGENT_ID) == "its transcript is missing"
    (tmp_path / "projects" / "-old").mkdir(parents=True)
    (tmp_path / "projects" / "-old" / f"{AGENT_ID}.jsonl").write_text("garbage\n{not json\n")
    assert conversation.prepare_resume(AGENT_ID) == "its transcript holds no messages"
    assert not has_messages(tmp_path / "nowhere.jsonl")
