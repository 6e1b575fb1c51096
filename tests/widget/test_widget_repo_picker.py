"""The new-session form's GitHub lists on the widget's side: the user's repositories and a chosen
one's branches, fetched on the review's workers (a held executor here, so nothing is fetched on
the kernel's thread), answered to the view with the ``seq`` it asked with, checked field by field,
and a host's refusal answered in words without touching the chat's error banner.
"""

from __future__ import annotations

from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

from held_executor import HeldExecutor

from jupyter_cloudws.client.errors import CloudwsError
from jupyter_cloudws.widget.chat import ChatWidget
from jupyter_cloudws.widget.repos import NOT_CONFIGURED_HINT, branch_choices, repo_choices

HOSTILE = "<img src=x onerror=alert(1)>"


def gh_repo(full_name: str, *, private: bool = False, pushed_at: str = "2026-11-30T10:00:00Z", **kw: Any) -> dict[str, Any]:
    return {"full_name": full_name, "private": private, "pushed_at": pushed_at, "default_branch": "main",
            "clone_url": f"https://github.test/{full_name}.git", "description": None, **kw}  # fmt: skip


class GitHubClient:
    """A client whose GitHub answers have the hub's REST shapes; ``calls`` records each request."""

    _loop = None

    def __init__(self, configured: bool = True) -> None:
        self.configured = configured
        self.calls: list[tuple[str, Any]] = []
        self.repos = [gh_repo("octo/secret", private=True, pushed_at="2026-12-01T09:00:00Z"),
                      gh_repo("octo/public", description=HOSTILE)]  # fmt: skip
        self.error: Exception | None = None

    def sessions(self, q: str | None = None) -> list[Any]:
        return []

    def recent_repos(self) -> list[str]:
        return []

    def github_repos(self, q: str | None = None) -> dict[str, Any]:
        self.calls.append(("repos", q))
        if self.error is not None:
            raise self.error
        if not self.configured:
            return {"configured": False, "repos": []}
        return {"configured": True, "repos": [r for r in self.repos if not q or q in r["full_name"]]}

    def github_branches(self, full_name: str) -> dict[str, Any]:
        self.calls.append(("branches", full_name))
        if self.error is not None:
            raise self.error
        return {"default_branch": "trunk", "branches": [{"name": "alpha", "protected": False},
                                                        {"name": "trunk", "protected": True}]}  # fmt: skip


class Silent(BaseComm):
    def publish_msg(self, *args: Any, **kwargs: Any) -> None:
        pass


def make_chat(monkeypatch: pytest.MonkeyPatch, client: Any) -> tuple[ChatWidget, HeldExecutor, list[dict[str, Any]]]:
    monkeypatch.setattr(comm, "create_comm", lambda **kw: Silent(**kw))
    executor = HeldExecutor()
    widget = ChatWidget(client, review_executor=executor)
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append(content))
    return widget, executor, sent


def front_end(widget: ChatWidget, **content: Any) -> None:
    widget._on_front_end_message(widget, content, [])


def test_the_repositories_are_fetched_off_the_kernels_thread_and_answered_with_their_seq(monkeypatch):
    client = GitHubClient()
    widget, executor, sent = make_chat(monkeypatch, client)
    front_end(widget, type="github_repos", q="", seq=1)
    front_end(widget, type="github_repos", q=" secret ", seq=2)
    assert client.calls == [] and sent == [], "nothing is asked on the kernel's thread"
    assert executor.run() == 2
    assert client.calls == [("repos", None), ("repos", "secret")]
    everything, narrowed = sent
    assert (everything["seq"], everything["configured"], everything["hint"]) == (1, True, "")
    assert [(r["full_name"], r["private"]) for r in everything["repos"]] == [("octo/secret", True), ("octo/public", False)]
    assert everything["repos"][1] == {
        "full_name": "octo/public", "clone_url": "https://github.test/octo/public.git", "private": False,
        "pushed_at": "2026-11-30T10:00:00Z", "default_branch": "main", "description": HOSTILE,
    }, "a missing description is empty text; a hostile one travels as a string the page sets as text"  # fmt: skip
    assert (narrowed["seq"], narrowed["q"], [r["full_name"] for r in narrowed["repos"]]) == (2, "secret", ["octo/secret"])


def test_without_a_token_the_form_gets_the_hint_and_no_list(monkeypatch):
    client = GitHubClient(configured=False)
    widget, executor, sent = make_chat(monkeypatch, client)
    front_end(widget, type="github_repos", q="", seq=1)
    executor.run()
    assert sent == [{"type": "github_repos", "seq": 1, "q": "", "configured": False, "repos": [],
                     "hint": NOT_CONFIGURED_HINT}]  # fmt: skip
    assert "c.GitHub.token" in NOT_CONFIGURED_HINT


def test_an_older_client_without_the_call_is_as_without_a_token(monkeypatch):
    client = GitHubClient()
    monkeypatch.setattr(client, "github_repos", None)
    widget, executor, sent = make_chat(monkeypatch, client)
    front_end(widget, type="github_repos", q="", seq=3)
    executor.run()
    assert (sent[0]["configured"], sent[0]["repos"], sent[0]["seq"]) == (False, [], 3)


def test_a_hosts_refusal_is_answered_in_words_and_the_banner_stays(monkeypatch):
    client = GitHubClient()
    widget, executor, sent = make_chat(monkeypatch, client)
    widget.error = "an earlier error the user has not read yet"
    client.error = CloudwsError(502, "github_unauthorized", "GitHub refused the token: Bad credentials")
    front_end(widget, type="github_repos", q="", seq=1)
    front_end(widget, type="github_branches", full_name="octo/secret", seq=1)
    executor.run()
    repos, branches = sent
    assert repos["error"] == "Could not list your GitHub repositories: GitHub refused the token: Bad credentials"
    assert (repos["repos"], repos["configured"]) == ([], True)
    assert branches["error"] == "Could not list the branches of octo/secret: GitHub refused the token: Bad credentials"
    assert branches["branches"] == []
    assert widget.error == "an earlier error the user has not read yet"
    client.error = None  # the form stays usable: asked again, it answers
    front_end(widget, type="github_repos", q="", seq=2)
    executor.run()
    assert "error" not in sent[-1] and len(sent[-1]["repos"]) == 2


def test_a_chosen_repositorys_branches_come_with_the_default_first(monkeypatch):
    client = GitHubClient()
    widget, executor, sent = make_chat(monkeypatch, client)
    front_end(widget, type="github_branches", full_name="octo/secret", seq=7)
    assert client.calls == []
    executor.run()
    assert client.calls == [("branches", "octo/secret")]
    assert sent == [{"type": "github_branches", "seq": 7, "full_name": "octo/secret", "default_branch": "trunk",
                     "branches": [{"name": "trunk", "protected": True}, {"name": "alpha", "protected": False}]}]  # fmt: skip


def test_an_answer_after_the_widget_closed_is_dropped(monkeypatch):
    client = GitHubClient()
    widget, executor, sent = make_chat(monkeypatch, client)
    front_end(widget, type="github_repos", q="", seq=1)
    executor.run()
    assert [m["seq"] for m in sent] == [1]
    front_end(widget, type="github_repos", q="", seq=2)
    widget._closed = True  # as close() leaves it; close() itself also stops the real executor
    executor.run()
    assert client.calls == [("repos", None), ("repos", None)] and [m["seq"] for m in sent] == [1]


def test_answers_of_the_wrong_shape_become_empty_fields():
    assert repo_choices(None) == {"configured": False, "repos": []}
    listed = repo_choices({"configured": True, "repos": [
        "not a repo", {"full_name": "o/no-url"}, {"full_name": 5, "clone_url": "u"},
        {"full_name": "o/r", "clone_url": "https://h/o/r.git", "private": "yes", "pushed_at": 3, "description": ["x"]},
    ]})  # fmt: skip
    assert listed == {"configured": True, "repos": [{"full_name": "o/r", "clone_url": "https://h/o/r.git",
                                                     "private": False, "pushed_at": "", "default_branch": "",
                                                     "description": ""}]}  # fmt: skip
    assert branch_choices({"default_branch": "main", "branches": [{"name": "dev"}, {"name": "dev"}, None]}) == {
        "default_branch": "main", "branches": [{"name": "main", "protected": False}, {"name": "dev", "protected": False}],
    }, "a default left off the host's page is still offered; a name listed twice once"  # fmt: skip
