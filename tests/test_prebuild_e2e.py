"""A prebuilt repository, end to end: a real jupyter-server with the local backend, its sandbox
daemon running the repository's setup script, the real Claude Code CLI against the fake API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from support import git

from jupyter_cloudws.testing.fake_anthropic import text, tool_use

# Counts its runs in the work tree (ignored by git) and leaves a marker in the sandbox's home.
SETUP = 'echo "setup ran" >> .setup-runs\necho "made by setup" > "$HOME/prebuilt-marker"\necho "setup done"\n'
CHECK = "cat .setup-runs ~/prebuilt-marker; git log --format=%s -3"


async def wait_for_build(api: Any, build_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code, build = await api.get(f"prebuilds/{build_id}")
        assert code == 200, build
        if build["status"] != "building":
            return build
        await asyncio.sleep(0.1)
    raise AssertionError(f"prebuild {build_id} still building after {timeout_s} s")


async def test_a_session_on_a_prebuilt_repository_starts_from_its_image_and_fetches_newer_commits(
    api, make_repo, fake_anthropic, tmp_path: Path, cloudws_data_dir: Path
):
    fake_anthropic.on("check the tree", tool_use("Bash", {"command": CHECK}), text("Checked."))
    repo = make_repo(files={"README.md": "# project\n", ".gitignore": ".setup-runs\n", ".cloudws/setup.sh": SETUP})
    code, build = await api.post("prebuilds", {"repo": str(repo), "branch": "main"})
    assert code == 202, build
    build = await wait_for_build(api, build["id"])
    assert build["status"] == "ready", build
    assert (cloudws_data_dir / "snapshots" / build["image_id"] / "repo" / ".setup-runs").exists()
    steps = [(s["step"], s["state"]) for s in build["steps"]]
    assert ("clone", "done") in steps and ("setup", "done") in steps and ("agent", "running") not in steps
    assert any("setup done" in s["output"] for s in build["steps"] if s["step"] == "setup")

    seed = tmp_path / "seeds" / "project"  # make_repo's working clone: pushes a commit after the build
    (seed / "later.txt").write_text("newer than the image\n")
    git("add", "later.txt", cwd=seed)
    git("commit", "--quiet", "-m", "pushed after the prebuild", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:main", cwd=seed)

    session = await api.new_session(repo, base_branch="main")
    accepted = await api.prompt(session["id"], "Please check the tree")
    done = await api.wait_until_complete(session["id"], accepted["message_id"])
    assert done["success"] is True, done

    events = await api.events(session["id"])
    (check,) = [e for e in events if e["type"] == "tool_call" and e["status"] == "completed"]
    output = check["output"]
    assert output.count("setup ran") == 1, f"setup ran once, at prebuild, not again: {output!r}"
    assert "made by setup" in output, output
    assert "pushed after the prebuild" in output, f"the newer commit was fetched onto the branch: {output!r}"
    progress = [(e["step"], e["state"]) for e in events if e["type"] == "sandbox_progress"]
    assert ("clone", "running") not in progress and ("setup", "running") not in progress, "\n".join(
        f"{e.get('step')} {e.get('state')} {e.get('detail')} {e.get('message')}" for e in events
        if e["type"] in ("sandbox_progress", "error"))
    assert ("fetch", "done") in progress, progress
    assert any(e["type"] == "sandbox_progress" and build["image_id"] in e["detail"] for e in events)
    statuses = [e["status"] for e in events if e["type"] == "sandbox_status"]
    assert "cloning" not in statuses and statuses[-1] == "ready", statuses
    assert not [e for e in events if e["type"] == "error"], "no fallback note"
