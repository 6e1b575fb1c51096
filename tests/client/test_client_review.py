"""``session.changes()``, ``artifacts()``, ``pull_request_draft()`` and ``create_pull_request()``
against a stub of the hub's review routes: the documented shapes become objects, unknown fields
are tolerated, the host's refusals arrive as the client's errors with the server's message, and
the notebook reprs escape everything the server sent."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from review_stub import CHANGES, PR, PY_DIFF, SESSION, TOKEN, Stub, serving_stub

from jupyter_cloudws.client import Changes, Client, CloudwsError, NotAuthorized, PullRequest, UnknownSession
from jupyter_cloudws.client.review import FileChange
from jupyter_cloudws.widget.markdown import PYGMENTS_CSS

@pytest.fixture
def stub() -> Iterator[Stub]:
    with serving_stub() as stub:
        stub.changes = CHANGES
        yield stub


@pytest.fixture
def client(stub: Stub) -> Iterator[Client]:
    with Client(stub.url, TOKEN, max_attempts=1) as client:
        yield client


def test_changes_become_objects_and_unknown_fields_are_kept_aside(client: Client, stub: Stub):
    session = client.session(SESSION["id"])
    changes = session.changes()
    assert isinstance(changes, Changes)
    assert changes.summary() == "5 files changed +4 −1"
    assert changes.totals == {"files": 5, "additions": 4, "deletions": 1} and changes.truncated
    assert (changes.base.ref, changes.head.sha) == ("main", "b" * 40)
    assert [f.path for f in changes] == ["app.py", "nb/analysis.ipynb", "logo.png"]
    assert changes["app.py"].diff == PY_DIFF and changes["app.py"].stat() == "+1 −1"
    notebook = changes["nb/analysis.ipynb"]
    assert notebook.notebook and notebook.cells[0].outputs == "0 outputs → 1 output (text/plain)"
    assert (notebook.cells[0].index, notebook.cells[0].cell_type) == (0, "code")
    renamed = changes["img/logo.png"]
    assert renamed.name == "img/logo.png → logo.png" and renamed.stat() == "binary" and renamed.additions is None
    assert changes.extra == {"computed_in_ms": 12}
    assert stub.requests[-1][:3] == ("GET", f"/cloudws/api/sessions/{SESSION['id']}/changes", {})


def test_one_prompts_changes_and_a_path_filter(client: Client, stub: Stub):
    session = client.session(SESSION["id"])
    changes = session.changes(prompt="m-3")
    assert changes.prompt_id == "m-3"
    assert stub.requests[-1][2] == {"prompt": ["m-3"]}
    only = changes.only("nb/", "img")
    assert [f.path for f in only] == ["nb/analysis.ipynb", "logo.png"]
    assert only.summary() == "2 files changed +3 −0"
    assert changes.only("app") .files == []  # a prefix of a name is not a folder


def test_a_refused_changes_request_raises_with_the_servers_message(client: Client):
    session = client.session(SESSION["id"])
    with pytest.raises(CloudwsError) as info:
        session.changes(prompt="nope")
    assert (info.value.status, info.value.code) == (404, "unknown_prompt")
    assert info.value.message == "no prompt nope in this session"
    with pytest.raises(UnknownSession):
        client.session("s-gone")


def test_artifacts_pull_requests_and_other_kinds(client: Client, stub: Stub):
    stub.artifacts = [PR, {"id": "art-2", "kind": "report", "path": "out.html"}]
    session = client.session(SESSION["id"])
    pr, other = session.artifacts()
    assert isinstance(pr, PullRequest)
    assert (pr.number, pr.url, pr.state, pr.title, pr.base, pr.head) == (
        7, PR["url"], "open", "Add a license", "main", SESSION["branch"])  # fmt: skip
    assert other == {"id": "art-2", "kind": "report", "path": "out.html"}
    assert session.pull_request() == pr
    stub.artifacts = []
    assert session.pull_request() is None


def test_draft_and_create_pull_request(client: Client, stub: Stub):
    session = client.session(SESSION["id"])
    assert session.pull_request_draft() == {"title": "Add a license", "body": "Adds LICENSE."}

    stub.pr_answer = (201, {"pull_request": PR, "created": True})
    pr = session.create_pull_request(title="License", draft=True)
    assert (pr.number, pr.created) == (7, True)
    assert stub.requests[-1][1:] == (f"/cloudws/api/sessions/{SESSION['id']}/pull-request", {},
                                     {"title": "License", "draft": True})  # fmt: skip

    stub.pr_answer = (200, {"pull_request": PR, "created": False})
    again = session.create_pull_request()
    assert (again.number, again.created) == (7, False)
    assert stub.requests[-1][3] == {"draft": False}  # no title or body: the hub drafts them


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (400, {"error": "no_token", "message": "no GitHub token: set c.GitHub.token or GITHUB_TOKEN"},
         CloudwsError, "no_token"),
        (403, {"error": "forbidden_by_host", "message": "GitHub: Resource not accessible by integration"},
         NotAuthorized, "forbidden_by_host"),
        (422, {"code": "branch_protected", "message": "push declined: protected branch"}, CloudwsError,
         "branch_protected"),
    ],
)  # fmt: skip
def test_a_hosts_refusal_raises_with_its_message(client: Client, stub: Stub, status, body, cls, code):
    stub.pr_answer = (status, body)
    with pytest.raises(cls) as info:
        client.session(SESSION["id"]).create_pull_request()
    assert (info.value.status, info.value.code, info.value.message) == (status, code, body["message"])


HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>'


def test_reprs_escape_what_the_server_sent():
    changes = Changes.from_json({
        "session_id": "s", "files": [
            {"path": f"evil{HOSTILE}.py", "status": "modified", "additions": 1, "deletions": 0,
             "diff": f"--- a/x\n+++ b/x\n@@ -0,0 +1 @@\n+{HOSTILE}\n```\n</pre></div>{HOSTILE}\n"},
            {"path": "n.ipynb", "status": "modified", "notebook": True, "additions": 1, "deletions": 1,
             "diff": "", "cells": [{"index": 2, "cell_type": HOSTILE, "status": "modified",
                                   "source_diff": f"-a\n+{HOSTILE}\n", "outputs": HOSTILE}]},
        ],
        "totals": {"files": 2, "additions": 2, "deletions": 1},
    })  # fmt: skip
    rendered = changes._repr_html_()
    page = _Page(rendered)
    assert page.tags <= {"div", "p", "strong", "span", "details", "summary", "code", "pre", "em"}, page.tags
    assert not [a for a in page.attributes if a.startswith("on")]
    assert HOSTILE in page.text  # shown as text, not dropped
    assert "2 files changed +2 −1" in rendered
    assert 'class="gi"' in rendered  # the added line is highlighted as an insertion
    markdown = changes._repr_markdown_()
    outside_fences = "".join(part for i, part in enumerate(_split_fences(markdown)) if i % 2 == 0)
    assert "<script" not in outside_fences and "&lt;script&gt;" in outside_fences
    # The diff's own ``` cannot close the fence around it.
    assert "````diff" in markdown

    pr = PullRequest.from_json({"number": 1, "url": "javascript:alert(1)", "state": "open", "title": HOSTILE})
    page = _Page(pr._repr_html_())
    assert page.tags <= {"div", "p", "a"} and "javascript:" not in str(page.hrefs) and HOSTILE in page.text
    assert "javascript:" not in pr._repr_markdown_() and "<script" not in pr._repr_markdown_()


class _Page(HTMLParser):
    """The elements, attribute names, link targets and text of an HTML fragment (after the
    highlight stylesheet the reprs start with, which must be the chat's own)."""

    def __init__(self, fragment: str) -> None:
        super().__init__(convert_charrefs=True)
        style = f"<style>{PYGMENTS_CSS}</style>"
        assert fragment.startswith(style)
        fragment = fragment[len(style) :]
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.hrefs: list[str | None] = []
        self.text = ""
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}
        self.hrefs += [value for name, value in attrs if name == "href"]

    def handle_data(self, data: str) -> None:
        self.text += data


def _split_fences(markdown: str) -> list[str]:
    """Text outside and inside fenced blocks, alternating (outside first)."""
    parts, current, fence = [], [], None
    for line in markdown.splitlines():
        if fence is None and line.startswith("```"):
            parts.append("\n".join(current))
            current, fence = [], line[: len(line) - len(line.lstrip("`"))]
        elif fence is not None and line == fence:
            parts.append("\n".join(current))
            current, fence = [], None
        else:
            current.append(line)
    parts.append("\n".join(current))
    return parts


def test_parsing_tolerates_missing_and_odd_fields():
    f = FileChange.from_json({"path": "a", "additions": True, "cells": "nope"})
    assert (f.status, f.additions, f.cells, f.diff) == ("modified", None, None, "")
    changes = Changes.from_json({"files": [f.__dict__ | {"cells": None}, "junk"], "totals": None})
    assert (changes.total_files, changes.additions, changes.base) == (1, 0, None)
