"""An agent writes a file larger than a bridge frame: the real Claude Code CLI against the fake
API, in a local sandbox. The file is written and committed whole; its tool_call events show the
content cut with a note, so every event reaches the hub and none is dropped for its size."""

from __future__ import annotations

import subprocess

from support import git

from cloudws_sandbox.protocol import BRIDGE_MAX_LINE_BYTES
from jupyter_cloudws.testing.fake_anthropic import text, tool_use

BIG_CHARS = BRIDGE_MAX_LINE_BYTES + 1024  # one character a byte: over the limit on its own


async def test_a_write_bigger_than_a_frame_arrives_cut_with_a_note_and_is_committed_whole(
    api, make_repo, fake_anthropic
):
    content = ("0123456789abcdef" * (BIG_CHARS // 16 + 1))[:BIG_CHARS]
    fake_anthropic.on("write the big file", tool_use("Write", {"file_path": "big.txt", "content": content}),
                      text("Wrote it."))  # fmt: skip
    repo = make_repo()
    session = await api.new_session(repo)
    prompt = await api.prompt(session["id"], "Please write the big file")
    done = await api.wait_until_complete(session["id"], prompt["message_id"], timeout_s=180)
    assert done["success"] is True, done

    events = await api.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    calls = [e for e in events if e["type"] == "tool_call" and e["tool"] == "Write"]
    assert [c["status"] for c in calls] == ["running", "completed"], "both events arrived"
    for call in calls:
        shown = call["input"]["content"]
        assert content.startswith(shown.split("\n… (")[0]) and len(shown) < 100_000
        assert shown.endswith("more characters not shown)")
    assert not [e for e in events if e["type"] == "error"], "no frame was refused"
    assert [e["type"] for e in events].index("assistant_text") > events.index(calls[1]), "the turn went on"
    committed = subprocess.run(
        ["git", "--git-dir", str(repo), "cat-file", "-s", f"{session['branch']}:big.txt"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert int(committed) == BIG_CHARS, "the work itself is whole"
    assert git("--git-dir", str(repo), "log", "--format=%s", "-1", session["branch"]) == "Please write the big file"
