"""A user's review of a prompt's work, end to end: the real Claude Code CLI in a local sandbox
edits a Python file and a notebook, its ``git`` event lists them, and the changes route shows
both diffs, the notebook's cell by cell."""

from __future__ import annotations

from review_support import notebook, stream
from support import git

from jupyter_cloudws.testing.fake_anthropic import text, tool_use

EDIT = "sed -i -e 's/x = 1/x = 2/' -e 's/result 1/result 2/' app.py analysis.ipynb"


async def test_a_prompt_that_edits_code_and_a_notebook_shows_both_diffs(api, make_repo, fake_anthropic):
    fake_anthropic.on("bump x", tool_use("Bash", {"command": EDIT}), text("x is now 2."))
    repo = make_repo(files={
        "app.py": "x = 1\nprint(x)\n",
        "analysis.ipynb": notebook(("markdown", "# Analysis\n", []),
                                   ("code", "x = 1\nprint(f'result {x}')\n", [stream("result 1\n")])),
    })  # fmt: skip
    session = await api.new_session(repo)
    prompt = await api.prompt(session["id"], "Please bump x to 2")
    done = await api.wait_until_complete(session["id"], prompt["message_id"])
    assert done["success"], done

    (event,) = [e for e in await api.events(session["id"]) if e["type"] == "git"]
    assert event["before"] == git("--git-dir", str(repo), "rev-parse", "main")
    assert event["sha"] == git("--git-dir", str(repo), "rev-parse", session["branch"])
    assert event["files_total"] == 2
    assert sorted(event["files"], key=lambda f: f["path"]) == [
        {"path": "analysis.ipynb", "status": "modified", "additions": 2, "deletions": 2},
        {"path": "app.py", "status": "modified", "additions": 1, "deletions": 1},
    ]

    code, whole = await api.get(f"sessions/{session['id']}/changes")
    assert code == 200, whole
    code, one = await api.get(f"sessions/{session['id']}/changes", prompt=prompt["message_id"])
    assert code == 200, one
    for answer in (whole, one):
        files = {f["path"]: f for f in answer["files"]}
        assert answer["head"] == {"ref": session["branch"], "sha": event["sha"]}
        assert answer["base"]["sha"] == event["before"]
        assert answer["totals"] == {"files": 2, "additions": 3, "deletions": 3}
        assert "-x = 1\n+x = 2\n" in files["app.py"]["diff"] and files["app.py"]["notebook"] is False
        nb = files["analysis.ipynb"]
        assert nb["notebook"] is True and '"cell_type":' not in nb["diff"]
        (cell,) = nb["cells"]
        assert (cell["index"], cell["cell_type"], cell["status"]) == (1, "code", "modified")
        assert cell["source_diff"].startswith("@@ -1,2 +1,2 @@\n-x = 1\n+x = 2\n")
        assert cell["outputs"] == "1 output changed (stdout)"
    assert whole["prompt_id"] is None and one["prompt_id"] == prompt["message_id"]

    code, body = await api.get(f"sessions/{session['id']}/changes", prompt="not-a-prompt")
    assert (code, body["code"]) == (404, "unknown_prompt")
    code, body = await api.get("sessions/not-a-session/changes")
    assert (code, body["code"]) == (404, "unknown_session")
