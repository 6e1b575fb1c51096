"""What a snapshot keeps across an idle stop: a real jupyter-server, local sandboxes running the real
Claude Code CLI against the fake API, and a tiny idle timeout."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import git

from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text, tool_use

WRITE = "Please write your notes down"
READ = "Now read your notes back"
NOTES = "the plan: pelicans at dawn"


def script(fake: FakeAnthropic) -> None:
    fake.on("write your notes", tool_use("Bash", {"command": f"echo '{NOTES}' > notes.txt"}), text("Noted."))
    fake.on("read your notes", tool_use("Bash", {"command": "cat notes.txt"}), text("They say pelicans."))


@pytest.mark.parametrize("cloudws_config", [{"sandbox_idle_timeout_s": 0.5}])
async def test_a_file_git_ignores_survives_an_idle_stop_and_the_conversation_goes_on(
    api, make_repo, fake_anthropic, jp_serverapp, cloudws_data_dir: Path
):
    script(fake_anthropic)
    repo = make_repo(files={"README.md": "# project\n", ".gitignore": "notes.txt\n"})
    sid = (await api.new_session(repo))["id"]
    first = await api.prompt(sid, WRITE)
    assert (await api.wait_until_complete(sid, first["message_id"]))["success"] is True
    await api.wait_for_event(sid, lambda e: e["type"] == "sandbox_status" and e["status"] == "stopped", 30)
    hub = jp_serverapp.web_app.settings["cloudws_hub"]
    snapshot_id = hub.store.sandbox_record(sid)["snapshot_id"]
    assert snapshot_id and (cloudws_data_dir / "snapshots" / snapshot_id / "repo" / "notes.txt").exists()
    assert "notes.txt" not in git("log", "--all", "--name-only", "--format=", cwd=repo), "not in git: a clone lacks it"

    second = await api.prompt(sid, READ)
    assert (await api.wait_until_complete(sid, second["message_id"]))["success"] is True

    events = await api.events(sid)
    (read,) = [e for e in events if e["type"] == "tool_call" and e["status"] == "completed"
               and e["message_id"] == second["message_id"]]  # fmt: skip
    assert NOTES in read["output"], "the file came back with the snapshot"
    statuses = [e["status"] for e in events if e["type"] == "sandbox_status"]
    assert statuses == ["spawning", "cloning", "ready", "stopped", "spawning", "ready"], "restored, not cloned"
    assert any(e["type"] == "sandbox_progress" and snapshot_id in e["detail"] for e in events)
    assert not [e for e in events if e["type"] == "error"]
    sent = repr(fake_anthropic.main_requests()[-1]["body"]["messages"])
    assert WRITE in sent and "Noted." in sent, "the earlier turn went back to the model"
