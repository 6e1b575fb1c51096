"""A session's repository as its sandbox would leave it, made with real git: a bare origin, a
work tree on the session branch, and the ``git`` events a prompt logs (as the daemon makes them)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from support import git

from cloudws_sandbox import gitops
from cloudws_sandbox.protocol import GitEvent
from jupyter_cloudws.hub import SessionHub

BRANCH = "cloudws/review1"


class Workspace:
    """A clone of ``origin`` on the session branch; ``prompt()`` commits what a prompt changed,
    pushes it, and logs the prompt and its ``git`` event in the hub's store."""

    def __init__(self, hub: SessionHub, origin: Path | str, work: Path, owner: str = "ada") -> None:
        self.hub = hub
        self.work = work
        git("clone", "--quiet", str(origin), str(work))
        git("checkout", "--quiet", "-b", BRANCH, cwd=work)
        self.session = hub.store.create_session(owner=owner, repo=str(origin), base_branch="", branch=BRANCH,
                                                title="review", model=None)  # fmt: skip
        self.sid = self.session["id"]

    def write(self, files: dict[str, str | bytes | None]) -> None:
        for rel, content in files.items():
            path = self.work / rel
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work)

    def head_or_none(self) -> str | None:
        """HEAD, or None in a repository with no commit yet."""
        found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=self.work,
                               capture_output=True, text=True)  # fmt: skip
        return found.stdout.strip() or None

    async def prompt(self, files: dict[str, str | bytes | None] | None = None, *, push: bool = True,
                     text: str = "change things") -> str:  # fmt: skip
        """One prompt's work: returns its id; its ``git`` event is in the store."""
        prompt, _ = self.hub.store.enqueue_prompt(self.sid, text=text, model=None, client_request_id=None,
                                                  author={"username": "ada"}, max_queue=100)  # fmt: skip
        before = self.head_or_none()
        self.write(files or {})
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", text, cwd=self.work)
        sha = self.head()
        listed, total = await gitops.changed_files(str(self.work), before or "", sha)
        if push:
            git("push", "--quiet", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=self.work)
        event = GitEvent(BRANCH, sha, pushed=push, committed=True, message_id=prompt["id"], before=before,
                         files=listed, files_total=total, error=None if push else "git push failed: rejected")  # fmt: skip
        self.hub.store.append_event(self.sid, event)
        return prompt["id"]


def notebook(*cells: tuple[str, str, list[dict[str, Any]]]) -> str:
    """A notebook's JSON (nbformat 4) with ``(cell_type, source, outputs)`` cells, sources as
    lists of lines as Jupyter writes them."""
    out_cells = []
    for i, (cell_type, source, outputs) in enumerate(cells):
        cell: dict[str, Any] = {"cell_type": cell_type, "id": f"cell-{i}", "metadata": {},
                                "source": source.splitlines(keepends=True)}  # fmt: skip
        if cell_type == "code":
            cell |= {"execution_count": i + 1, "outputs": outputs}
        out_cells.append(cell)
    return json.dumps({"cells": out_cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n"


def stream(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": [text]}


def image() -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure>"]}}

