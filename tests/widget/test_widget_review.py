"""The review in the chat: each prompt's files changed, the session's total, a file's diff (a
notebook's cell by cell), the pull request badge kept fresh, and the pull request form.

Rendering is pure (review.py, transcript.py). The widget's side runs against a stand-in session
whose answers have the REST shapes of docs/protocol.md, and a held executor: the review's
fetches wait until the test runs them, so every interleaving is chosen, not timed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

from held_executor import HeldExecutor

from jupyter_cloudws.widget import controller as chat_module
from jupyter_cloudws.widget import review
from jupyter_cloudws.widget.chat import ChatWidget
from jupyter_cloudws.widget.review import file_view, git_files, pull_request_badge, render_diff
from jupyter_cloudws.widget.transcript import Transcript

HOSTILE_PATH = "<img src=x onerror=alert(1)>.py"
PY_DIFF = (
    "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n"
    " import os\n-print('old')\n+print('<script>alert(1)</script>')\n"
)
NB_CELL_DIFF = "@@ -1 +1 @@\n-x = 1\n+x = 2\n"


def ev(seq: int, type_: str, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": 1000.0 + seq, "type": type_, **fields}


def py_file(path: str = "app.py", **kw: Any) -> dict[str, Any]:
    return {"path": path, "old_path": None, "status": "modified", "additions": 1, "deletions": 1, "binary": False,
            "notebook": False, "diff": PY_DIFF, "diff_truncated": False, "cells": None, **kw}  # fmt: skip


def nb_file(**kw: Any) -> dict[str, Any]:
    cells = [{"index": 2, "cell_type": "code", "status": "modified", "source_diff": NB_CELL_DIFF,
              "outputs": "1 output → 2 outputs (image/png)"}]  # fmt: skip
    return {"path": "analysis.ipynb", "old_path": None, "status": "modified", "additions": 1, "deletions": 1,
            "binary": False, "notebook": True, "diff": "cell 2 (code, modified)\n" + NB_CELL_DIFF,
            "diff_truncated": False, "cells": cells, **kw}  # fmt: skip


def changes(*files: dict[str, Any], prompt_id: str | None = None) -> dict[str, Any]:
    return {
        "session_id": "s1", "prompt_id": prompt_id, "base": {"ref": "main", "sha": "a" * 40},
        "head": {"ref": "cloudws/s1", "sha": "b" * 40}, "files": list(files),
        "totals": {"files": len(files), "additions": sum(f["additions"] or 0 for f in files),
                   "deletions": sum(f["deletions"] or 0 for f in files)},
        "truncated": False,
    }  # fmt: skip


# --- rendering ----------------------------------------------------------------------------------


def test_a_diff_is_highlighted_and_its_markup_stays_text():
    html = render_diff(PY_DIFF)
    assert html.startswith('<div class="highlight"><pre>')
    assert '<span class="gi">' in html and '<span class="gd">' in html, "added and removed lines are marked"
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    hostile = render_diff('+<img src=x onerror=alert(1)>\n+<a href="javascript:x">y</a>\n')
    assert "<img" not in hostile and "<a " not in hostile and "&lt;img src=x onerror=alert(1)&gt;" in hostile


def test_a_file_opens_to_its_diff_and_a_notebook_to_its_cells_never_json():
    view = file_view(py_file(HOSTILE_PATH))
    assert view["path"] == HOSTILE_PATH, "the path travels as text (the front end sets it as text)"
    assert "gi" in view["html"] and view["cells"] is None and view["truncated"] is False

    nb = file_view(nb_file())
    assert nb["html"] == "" and nb["notebook"] is True
    (cell,) = nb["cells"]
    assert (cell["index"], cell["cell_type"], cell["status"]) == (2, "code", "modified")
    assert cell["outputs"] == "1 output → 2 outputs (image/png)"
    assert '<span class="gi">+x = 2' in cell["html"] and '<span class="gd">-x = 1' in cell["html"]
    # Without cells, a notebook shows the server's cell-wise text, still as a diff.
    flat = file_view(nb_file(cells=None))
    assert "cell 2 (code, modified)" in flat["html"] and '"cell_type"' not in flat["html"]


def test_a_cut_diff_and_a_binary_file_say_so(monkeypatch):
    assert file_view(py_file(diff_truncated=True))["truncated"] is True
    monkeypatch.setattr(review, "MAX_DIFF_CHARS", 300)  # whatever the server sent, the chat bounds it
    huge = file_view(py_file(diff="+x\n" * 1000))
    assert huge["truncated"] is True and huge["html"].count('<span class="gi">') == 100
    binary = file_view(py_file("logo.png", binary=True, diff="", additions=None, deletions=None))
    assert binary["binary"] is True and binary["html"] == "" and binary["additions"] is None


def test_a_git_event_lists_its_files_checked_and_counted():
    files = [
        {"path": "app.py", "status": "modified", "additions": 3, "deletions": 1},
        {"path": HOSTILE_PATH, "status": "added", "additions": 2, "deletions": 0},
        {"path": "logo.png", "status": "added", "additions": None, "deletions": None},
        {"path": "", "status": "added"},
        "not a file",
        {"path": "x", "status": "<b>evil</b>", "additions": -4},
    ]
    got = git_files({"files": files, "files_total": 900})
    assert [f["path"] for f in got["files"]] == ["app.py", HOSTILE_PATH, "logo.png", "x"]
    assert got["files"][3] == {"path": "x", "status": "modified", "additions": None, "deletions": None}
    assert (got["files_total"], got["additions"], got["deletions"]) == (900, 5, 1)
    assert git_files({"files": files[:1]})["files_total"] == 1, "no files_total: the files listed"
    assert git_files({})["files"] is None, "an older hub's event: the commit line only"


def test_each_prompt_shows_its_files_under_its_commit():
    t = Transcript()
    t.apply(ev(1, "user_message", message_id="m1", text="edit", author={"name": "Ada"}))
    t.apply(ev(2, "git", message_id="m1", branch="cloudws/s1", sha="0123456789abcdef", pushed=True, committed=True,
               before="f" * 40, files=[{"path": "app.py", "status": "modified", "additions": 3, "deletions": 1}],
               files_total=1))  # fmt: skip
    item = t.get("g:m1")
    assert item["files"] == [{"path": "app.py", "status": "modified", "additions": 3, "deletions": 1}]
    assert (item["files_total"], item["additions"], item["deletions"]) == (1, 3, 1)
    assert json.loads(json.dumps(item)) == item, "it travels as JSON"


def test_the_badge_follows_the_latest_pull_request_event():
    t = Transcript()
    assert t.pull_request is None
    t.apply(ev(1, "pull_request", number=7, url="https://github.test/o/r/pull/7", state="open", title="Fix"))
    assert t.pull_request == {"number": 7, "state": "open", "title": "Fix", "url": "https://github.test/o/r/pull/7"}
    t.apply(ev(2, "pull_request", number=7, url="https://github.test/o/r/pull/7", state="merged", title="Fix"))
    assert t.pull_request["state"] == "merged"
    assert t.items == [], "the badge is in the header, not in line"
    assert pull_request_badge({"number": 8, "url": "javascript:alert(1)", "state": "<x>"}) == {
        "number": 8,
        "state": "open",
        "title": "",
        "url": "",
    }, "only http(s) becomes a link; states are known ones"
    assert pull_request_badge({"url": "https://x"}) is None


# --- the widget ---------------------------------------------------------------------------------


class ReviewSession:
    """A session whose review answers have the hub's REST shapes; ``calls`` records each request."""

    def __init__(self) -> None:
        self.id, self.title, self.branch, self.status = "s1", "T", "cloudws/s1", "idle"
        self.repo, self.model, self.base_branch, self.sandbox_status = "/repo", None, "main", "ready"
        self.archived, self.created_at, self.updated_at = False, 1.0, 1.0
        self.callback: Callable[[str, dict[str, Any]], None] | None = None
        self.calls: list[tuple[str, Any]] = []
        self.session_changes = changes(py_file(), nb_file())
        self.prompt_changes = {"m1": changes(py_file(HOSTILE_PATH), nb_file(), prompt_id="m1")}
        self.during_changes: Callable[[], None] | None = None
        self.create_error: Exception | None = None

    def subscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> Callable[[], None]:
        self.callback = callback
        return lambda: None

    def emit(self, event: dict[str, Any]) -> None:
        assert self.callback is not None
        self.callback("event", event)

    def changes(self, prompt: str | None = None) -> dict[str, Any]:
        self.calls.append(("changes", prompt))
        if self.during_changes is not None:
            self.during_changes, during = None, self.during_changes
            during()
        return self.prompt_changes[prompt] if prompt else self.session_changes

    def artifacts(self) -> list[dict[str, Any]]:
        self.calls.append(("artifacts", None))
        return []

    def pull_request_draft(self) -> dict[str, str]:
        self.calls.append(("draft", None))
        return {"title": "Greeting file", "body": "- Please make a greeting file\n\nDone."}

    def create_pull_request(self, title: str | None = None, body: str | None = None, draft: bool = False) -> Any:
        self.calls.append(("create", (title, body, draft)))
        if self.create_error is not None:
            raise self.create_error
        return {"id": "a1", "kind": "pull_request", "number": 12, "url": "https://github.test/o/r/pull/12",
                "state": "draft" if draft else "open", "title": title, "base": "main", "head": "cloudws/s1"}  # fmt: skip


class StubClient:
    _loop = None


class Silent(BaseComm):
    def publish_msg(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch) -> tuple[ChatWidget, ReviewSession, HeldExecutor, list[dict[str, Any]]]:
    monkeypatch.setattr(comm, "create_comm", lambda **kw: Silent(**kw))
    session, executor = ReviewSession(), HeldExecutor()
    widget = ChatWidget(StubClient(), session, review_executor=executor)  # type: ignore[arg-type]
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append(content))
    return widget, session, executor, sent


def front_end(widget: ChatWidget, **content: Any) -> None:
    widget._on_front_end_message(widget, content, [])


def git_event(seq: int, mid: str) -> dict[str, Any]:
    return ev(seq, "git", message_id=mid, branch="cloudws/s1", sha="ab" * 20, pushed=True, committed=True,
              files=[{"path": "app.py", "status": "modified", "additions": 1, "deletions": 1}], files_total=1)  # fmt: skip


def test_the_session_total_is_asked_on_open_and_again_after_git_events(chat):
    widget, session, executor, _ = chat
    assert widget.changes_total == {"state": "loading"}
    executor.run()
    assert widget.changes_total["state"] == "ready"
    assert (widget.changes_total["files_total"], widget.changes_total["additions"]) == (2, 2)
    assert [f["path"] for f in widget.changes_total["files"]] == ["app.py", "analysis.ipynb"]

    # Replayed git events while nothing runs: one request for them all.
    session.emit(git_event(1, "m1"))
    session.emit(git_event(2, "m2"))
    session.calls.clear()
    executor.run()
    assert session.calls == [("changes", None)]
    # A git event while a request runs: one more after it, with the newer answer.
    session.emit(git_event(3, "m3"))
    session.calls.clear()
    newer = changes(py_file(), nb_file(), py_file("new.py"))
    session.during_changes = lambda: (setattr(session, "session_changes", newer), session.emit(git_event(4, "m4")))
    executor.run()
    assert session.calls == [("changes", None), ("changes", None)]
    assert widget.changes_total["files_total"] == 3


def test_a_file_of_a_prompt_is_fetched_once_and_sent_rendered(chat):
    widget, session, executor, sent = chat
    executor.run()
    session.calls.clear()
    front_end(widget, type="diff", scope="m1", path=HOSTILE_PATH)
    front_end(widget, type="diff", scope="m1", path="analysis.ipynb")
    executor.run()
    assert session.calls == [("changes", "m1")], "one request per prompt, the commit does not move"
    py, nb = [m for m in sent if m["type"] == "diff"]
    assert (py["scope"], py["path"]) == ("m1", HOSTILE_PATH) and "&lt;script&gt;" in py["file"]["html"]
    assert nb["file"]["cells"][0]["outputs"].startswith("1 output")
    # The session's own files come from the answer the total already fetched.
    front_end(widget, type="diff", scope="", path="app.py")
    front_end(widget, type="diff", scope="m1", path="missing.py")
    executor.run()
    assert session.calls == [("changes", "m1")]
    assert sent[-2]["file"]["path"] == "app.py" and "missing.py is not among the changes" in sent[-1]["error"]


def test_the_pull_request_form_drafts_refuses_and_sends(chat):
    widget, session, executor, _ = chat
    executor.run()
    front_end(widget, type="pr_draft")
    assert widget.pr_form == {"state": "loading"}
    executor.run()
    assert widget.pr_form == {"title": "Greeting file", "body": "- Please make a greeting file\n\nDone.",
                              "draft": False, "state": "ready"}  # fmt: skip

    front_end(widget, type="pr_create", title="  ", body="kept", draft=True)
    assert (
        widget.pr_form["state"] == "error" and "title" in widget.pr_form["error"] and widget.pr_form["body"] == "kept"
    )
    assert not executor.jobs

    session.create_error = RuntimeError("protected branch: pushes need a review (github_error, HTTP 422)")
    front_end(widget, type="pr_create", title="Mine", body="Edited body", draft=True)
    assert widget.pr_form["state"] == "sending"
    executor.run()
    assert widget.pr_form == {"title": "Mine", "body": "Edited body", "draft": True, "state": "error",
                              "error": "protected branch: pushes need a review (github_error, HTTP 422)"}  # fmt: skip
    assert widget.pull_request == {}

    session.create_error = None
    widget.view = "pr"
    front_end(widget, type="pr_create", title="Mine", body="Edited body", draft=True)
    executor.run()
    assert session.calls[-1] == ("create", ("Mine", "Edited body", True))
    assert widget.pull_request == {"number": 12, "state": "draft", "title": "Mine",
                                   "url": "https://github.test/o/r/pull/12"}  # fmt: skip
    assert widget.pr_form == {} and widget.view == "chat"


def test_the_badge_follows_events_and_polls_are_throttled(chat, monkeypatch):
    widget, session, executor, _ = chat
    executor.run()
    session.emit(ev(1, "pull_request", number=3, url="https://github.test/o/r/pull/3", state="open", title="T"))
    assert widget.pull_request["state"] == "open"

    class Clock:
        now_s = 1000.0

        def monotonic(self) -> float:
            return self.now_s

    clock = Clock()
    monkeypatch.setattr(chat_module, "time", clock)
    widget.pr_poll_interval_s = 10.0
    front_end(widget, type="pr_poll")
    front_end(widget, type="pr_poll")  # a second view's tick, while the first poll waits
    executor.run()
    clock.now_s += 2
    front_end(widget, type="pr_poll")  # too soon after the last
    assert not executor.jobs
    clock.now_s += 10
    front_end(widget, type="pr_poll")
    executor.run()
    assert session.calls.count(("artifacts", None)) == 2
    session.emit(ev(2, "pull_request", number=3, url="https://github.test/o/r/pull/3", state="merged", title="T"))
    assert widget.pull_request["state"] == "merged"


def test_the_clients_objects_read_like_the_rest_answers():
    from jupyter_cloudws.client.review import Changes, FileChange, PullRequest

    answer = changes(py_file(HOSTILE_PATH), nb_file())
    assert review.changes_summary(Changes.from_json(answer)) == review.changes_summary(answer)
    for f in answer["files"]:
        assert file_view(FileChange.from_json(f)) == file_view(f)
    pr = {"id": "a1", "kind": "pull_request", "number": 4, "url": "https://github.test/o/r/pull/4", "state": "merged",
          "title": "T", "base": "main", "head": "cloudws/s1"}  # fmt: skip
    assert pull_request_badge(PullRequest.from_json(pr)) == pull_request_badge(pr)
    assert pull_request_badge(pr) == {"number": 4, "state": "merged", "title": "T", "url": pr["url"]}
