"""A session on the user's own clone (a repository with a work tree, not a bare one): the
sandbox pushes the session branch into it, and the user brings the work home from there."""

from __future__ import annotations

from pathlib import Path

from support import git

from jupyter_cloudws.testing.fake_anthropic import text, tool_use


async def test_a_session_pushes_its_branch_into_a_repository_with_a_work_tree(api, fake_anthropic, tmp_path: Path):
    clone = tmp_path / "my-project"
    git("init", "--quiet", "--initial-branch=main", str(clone))
    (clone / "app.py").write_text("x = 1\n")
    git("add", "--all", cwd=clone)
    git("commit", "--quiet", "-m", "initial commit", cwd=clone)
    fake_anthropic.on("bump x", tool_use("Bash", {"command": "sed -i s/1/2/ app.py"}), text("x is 2."))

    session = await api.new_session(str(clone))
    prompt = await api.prompt(session["id"], "Please bump x")
    done = await api.wait_until_complete(session["id"], prompt["message_id"])
    assert done["success"], done

    (event,) = [e for e in await api.events(session["id"]) if e["type"] == "git"]
    assert event["pushed"] and event["error"] is None, event
    assert git("show", f"{session['branch']}:app.py", cwd=clone) == "x = 2"
    # The user's own branch and files are as they left them.
    assert (clone / "app.py").read_text() == "x = 1\n" and git("branch", "--show-current", cwd=clone) == "main"
