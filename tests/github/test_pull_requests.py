"""A session's pull request and the repository picker, through a real jupyter-server against the
fake GitHub (held to GitHub's OpenAPI description) and a real git host.

The session's work is staged as a sandbox leaves it: its branch pushed to the git host and a
``git`` event in the session's log (the end-to-end run with the real CLI lives elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User

from cloudws_sandbox.protocol import AssistantText, GitEvent, UserMessage
from github_helpers import REPO, push_branch
from hub_api import Api
from jupyter_cloudws.testing.fake_github import Broken, FakeGitHub
from jupyter_cloudws.testing.git_http import GitHttpServer

TOKENS = {"alice-token": "alice", "bob-token": "bob"}


class TokensForPeople(IdentityProvider):
    def get_user(self, handler: Any) -> Any:
        username = TOKENS.get(self.get_token(handler) or "")
        if username is None:
            return super().get_user(handler)
        handler._token_authenticated = True
        return User(username=username, name=username.title())


@pytest.fixture
def github_token(fake_github: FakeGitHub) -> str:
    return fake_github.token


@pytest.fixture
def jp_server_config(jp_server_config: dict, fake_github: FakeGitHub, github_token: str) -> dict:
    return {
        **jp_server_config,
        "ServerApp": {**jp_server_config["ServerApp"], "identity_provider_class": TokensForPeople},
        "GitHub": {"url": fake_github.web_url, "api_url": fake_github.url, "token": github_token},
    }


@pytest.fixture
def hub(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["cloudws_hub"]


def as_person(token: str, jp_fetch: Callable[..., Any]) -> Api:
    def fetch(*parts: str, **kwargs: Any) -> Any:
        return jp_fetch(*parts, headers={"Authorization": f"token {token}"}, **kwargs)

    return Api(fetch)


@pytest.fixture
def alice(jp_serverapp: Any, jp_fetch: Callable[..., Any]) -> Api:
    return as_person("alice-token", jp_fetch)


@pytest.fixture
def bob(jp_serverapp: Any, jp_fetch: Callable[..., Any]) -> Api:
    return as_person("bob-token", jp_fetch)


@pytest.fixture
def project(fake_github: FakeGitHub, git_http: GitHttpServer) -> str:
    url = git_http.make_remote(REPO, {"README.md": "# project\n"})
    fake_github.add_repo(REPO, private=True)
    return url


def stage_work(hub: Any, git_http: GitHttpServer, session: dict[str, Any], tmp: Path, *,
               prompts: tuple[str, ...] = ("Add a greeting module\nwith a hello() function",),
               summary: str = "Added **greet.py** with `hello()`.") -> str:  # fmt: skip
    """What a sandbox leaves after its prompts: the branch pushed, and the transcript."""
    sha = push_branch(git_http, REPO, session["branch"], tmp, {"greet.py": "def hello():\n    return 'hi'\n"})
    runner = hub.runner(session["id"])
    for i, text in enumerate(prompts):
        runner.append(UserMessage(f"m{i}", text, {"username": "alice"}))
    runner.append(AssistantText(f"m{len(prompts) - 1}", summary))
    runner.append(GitEvent(session["branch"], sha, pushed=True, committed=True, message_id=f"m{len(prompts) - 1}"))
    return sha


async def test_the_picker_lists_repositories_newest_push_first_private_marked(
    alice: Api, fake_github: FakeGitHub, git_http: GitHttpServer
) -> None:
    for name, pushed_at, private in (("octo-user/old", 1_000, False), ("octo-user/newest", 3_000, True),
                                     ("octo-user/middle", 2_000, False)):  # fmt: skip
        git_http.make_remote(name)
        fake_github.add_repo(name, private=private, pushed_at=pushed_at, description=f"the {name[10:]} one")
    code, listing = await alice.get("github/repos")
    assert code == 200 and listing["configured"] is True
    assert [(r["full_name"], r["private"], r["pushed_at"]) for r in listing["repos"]] == [
        ("octo-user/newest", True, "1970-01-01T00:50:00Z"),
        ("octo-user/middle", False, "1970-01-01T00:33:20Z"),
        ("octo-user/old", False, "1970-01-01T00:16:40Z"),
    ]
    assert listing["repos"][0] == {
        "full_name": "octo-user/newest", "private": True, "pushed_at": "1970-01-01T00:50:00Z",
        "default_branch": "main", "clone_url": git_http.url_for("octo-user/newest"), "description": "the newest one",
    }  # fmt: skip
    fake_github.set_pushed_at("octo-user/old", 4_000)
    code, found = await alice.get("github/repos", q="OLD")
    assert [r["full_name"] for r in found["repos"]] == ["octo-user/old"]
    code, by_description = await alice.get("github/repos", q="middle one")
    assert [r["full_name"] for r in by_description["repos"]] == ["octo-user/middle"]
    assert fake_github.errors == []


async def test_the_picker_lists_branches_with_the_default_first(
    alice: Api, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path
) -> None:
    push_branch(git_http, REPO, "zeta", tmp_path, {"z": "z\n"})
    push_branch(git_http, REPO, "alpha", tmp_path, {"a": "a\n"})
    fake_github.protect_branch(REPO, "main")
    code, listing = await alice.get("github/repos/octo-user/project/branches")
    assert code == 200, listing
    assert listing == {"default_branch": "main", "branches": [
        {"name": "main", "protected": True}, {"name": "alpha", "protected": False},
        {"name": "zeta", "protected": False}]}  # fmt: skip
    code, missing = await alice.get("github/repos/octo-user/nothing/branches")
    assert (code, missing["code"]) == (404, "github_not_found")


async def test_a_pull_request_is_opened_once_and_followed_until_merged(
    alice: Api, hub: Any, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path
) -> None:
    session = await alice.new_session(project)
    sha = stage_work(hub, git_http, session, tmp_path, prompts=("Add a greeting module\nwith hello()", "Also test it"))
    sid = session["id"]

    code, drafted = await alice.get(f"sessions/{sid}/pull-request/draft")
    assert code == 200
    assert drafted["title"] == "Add a greeting module"
    assert drafted["body"] == ("Added **greet.py** with `hello()`.\n\n## Prompts\n\n1. Add a greeting module with hello()\n"
                               f"2. Also test it\n\nCloudws-Session: {sid}")  # fmt: skip

    code, answer = await alice.post(f"sessions/{sid}/pull-request", {"draft": True})
    assert code == 201, answer
    assert answer["created"] is True
    pull = answer["pull_request"]
    assert {k: pull[k] for k in ("kind", "number", "state", "title", "base", "head")} == {
        "kind": "pull_request", "number": 1, "state": "draft", "title": "Add a greeting module",
        "base": "main", "head": session["branch"]}  # fmt: skip
    assert pull["url"] == f"{git_http.url}/{REPO}/pull/1"
    on_host = fake_github.pull(REPO, 1)
    assert (on_host.head, on_host.head_sha, on_host.base, on_host.body, on_host.draft) == (
        session["branch"], sha, "main", drafted["body"], True)  # fmt: skip

    code, again = await alice.post(f"sessions/{sid}/pull-request", {"title": "Another"})
    assert code == 200 and again["created"] is False
    assert again["pull_request"]["id"] == pull["id"] and again["pull_request"]["number"] == 1
    assert len(fake_github.pulls) == 1

    events = [e for e in await alice.events(sid) if e["type"] == "pull_request"]
    assert [(e["number"], e["state"], e["url"], e["title"]) for e in events] == [
        (1, "draft", pull["url"], "Add a greeting module")]

    fake_github.merge_pull(REPO, 1)
    code, listed = await alice.get(f"sessions/{sid}/artifacts")
    assert code == 200
    assert [(a["id"], a["kind"], a["state"]) for a in listed["artifacts"]] == [(pull["id"], "pull_request", "merged")]
    assert listed["artifacts"][0]["updated_at"] >= listed["artifacts"][0]["created_at"]
    events = [e for e in await alice.events(sid) if e["type"] == "pull_request"]
    assert [e["state"] for e in events] == ["draft", "merged"]
    # A merged pull request is settled: later listings do not ask the host again.
    asked = len(fake_github.requests)
    code, listed = await alice.get(f"sessions/{sid}/artifacts")
    assert listed["artifacts"][0]["state"] == "merged" and len(fake_github.requests) == asked
    assert fake_github.errors == []


async def test_a_subscribed_chat_sees_the_state_change_live(
    alice: Api, hub: Any, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path,
    open_socket: Callable[..., Any],
) -> None:  # fmt: skip
    session = await alice.new_session(project)
    stage_work(hub, git_http, session, tmp_path)
    code, answer = await alice.post(f"sessions/{session['id']}/pull-request")
    assert code == 201, answer
    socket = await open_socket(session["id"], headers={"Authorization": "token alice-token"})
    await socket.send({"type": "subscribe", "after": hub.store.get_session(session["id"])["last_seq"]})
    subscribed = await socket.until(lambda f: f["type"] == "subscribed")
    assert subscribed["events"] == []
    fake_github.close_pull(REPO, 1)
    code, listed = await alice.get(f"sessions/{session['id']}/artifacts")
    assert listed["artifacts"][0]["state"] == "closed"
    frame = await socket.until(lambda f: f["type"] == "event" and f["event"]["type"] == "pull_request")
    assert (frame["event"]["number"], frame["event"]["state"]) == (1, "closed")


async def test_open_pull_requests_are_asked_about_at_most_once_per_interval(
    alice: Api, hub: Any, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path
) -> None:
    session = await alice.new_session(project)
    stage_work(hub, git_http, session, tmp_path)
    assert (await alice.post(f"sessions/{session['id']}/pull-request"))[0] == 201
    now = [1000.0]
    hub.pull_requests.clock = lambda: now[0]
    path = f"/repos/{REPO}/pulls/1"
    for _ in range(3):
        await alice.get(f"sessions/{session['id']}/artifacts")
    assert [r["path"] for r in fake_github.requests].count(path) == 1
    fake_github.merge_pull(REPO, 1)
    code, listed = await alice.get(f"sessions/{session['id']}/artifacts")
    assert listed["artifacts"][0]["state"] == "open"  # within the interval: as stored
    now[0] += hub.pull_requests.refresh_interval_s
    code, listed = await alice.get(f"sessions/{session['id']}/artifacts")
    assert listed["artifacts"][0]["state"] == "merged"
    assert [r["path"] for r in fake_github.requests].count(path) == 2


async def test_the_per_session_locks_and_refresh_times_do_not_outlive_their_use(
    alice: Api, hub: Any, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path
) -> None:
    now = [1000.0]
    hub.pull_requests.clock = lambda: now[0]
    sids = []
    for n in range(2):
        session = await alice.new_session(project)
        stage_work(hub, git_http, session, tmp_path / f"s{n}")
        assert (await alice.post(f"sessions/{session['id']}/pull-request"))[0] == 201
        sids.append(session["id"])
    assert len(hub.pull_requests._locks) == 0, "a session's lock goes once no create holds or awaits it"
    await alice.get(f"sessions/{sids[0]}/artifacts")
    now[0] += hub.pull_requests.refresh_interval_s
    await alice.get(f"sessions/{sids[1]}/artifacts")
    assert list(hub.pull_requests._last_refresh) == [sids[1]], "the first session's time is past its interval"


async def test_a_branch_that_already_has_a_pull_request_is_linked_until_it_is_closed(
    alice: Api, hub: Any, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path
) -> None:
    session = await alice.new_session(project, base_branch="main")
    sid = session["id"]
    stage_work(hub, git_http, session, tmp_path)
    fake_github.pulls.clear()
    import httpx  # opened by someone on GitHub's own site, before the session asked

    opened = httpx.post(f"{fake_github.url}/repos/{REPO}/pulls", headers={"Authorization": f"token {fake_github.token}"},
                        json={"title": "Opened by hand", "head": session["branch"], "base": "main", "draft": True})  # fmt: skip
    assert opened.status_code == 201
    code, answer = await alice.post(f"sessions/{sid}/pull-request")
    assert code == 200, answer
    assert (answer["created"], answer["pull_request"]["number"], answer["pull_request"]["title"],
            answer["pull_request"]["state"]) == (False, 1, "Opened by hand", "draft")  # fmt: skip
    assert len(fake_github.pulls) == 1

    # Closed without merging: asking again opens a new one, and the old one stays listed.
    fake_github.close_pull(REPO, 1)
    code, answer = await alice.post(f"sessions/{sid}/pull-request")
    assert code == 201, answer
    assert (answer["created"], answer["pull_request"]["number"], answer["pull_request"]["state"]) == (True, 2, "open")
    assert [(p.number, p.state) for p in fake_github.pulls] == [(1, "closed"), (2, "open")]
    code, listed = await alice.get(f"sessions/{sid}/artifacts")
    assert sorted((a["number"], a["state"]) for a in listed["artifacts"]) == [(1, "closed"), (2, "open")]
    code, again = await alice.post(f"sessions/{sid}/pull-request")
    assert (code, again["created"], again["pull_request"]["number"]) == (200, False, 2)
    assert fake_github.errors == []


async def test_refusals_are_clear(
    alice: Api, hub: Any, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path,
    make_repo: Callable[..., Path],
) -> None:  # fmt: skip
    local = await alice.new_session(make_repo("local"))
    code, error = await alice.post(f"sessions/{local['id']}/pull-request")
    assert (code, error["code"]) == (400, "not_on_github") and "c.GitHub.url" in error["message"]

    session = await alice.new_session(project)
    sid = session["id"]
    code, error = await alice.post(f"sessions/{sid}/pull-request")
    assert (code, error["code"]) == (409, "not_pushed") and "pushed nothing" in error["message"]
    hub.runner(sid).append(GitEvent(session["branch"], "0" * 40, pushed=False, committed=True,
                                    error="git push failed: remote: Permission to octo-user/project denied"))  # fmt: skip
    code, error = await alice.post(f"sessions/{sid}/pull-request")
    assert (code, error["code"]) == (409, "not_pushed")
    assert error["message"] == (f"the last push of {session['branch']} failed: git push failed: "
                                "remote: Permission to octo-user/project denied, and the session's sandbox is not "
                                "running to push it again: the next prompt pushes the branch (send one), then ask again")  # fmt: skip

    stage_work(hub, git_http, session, tmp_path)
    code, error = await alice.post(f"sessions/{sid}/pull-request", {"title": 5})
    assert (code, error["code"]) == (400, "bad_request")
    code, error = await alice.post(f"sessions/{sid}/pull-request", {"base": "elsewhere"})
    assert (code, error["code"]) == (400, "bad_request") and "base" in error["message"]

    fake_github.protect_branch(REPO, "main")
    code, error = await alice.post(f"sessions/{sid}/pull-request")
    assert (code, error["code"]) == (422, "branch_protection")
    assert "protected branch 'main'" in error["message"]
    fake_github.repos[REPO].protected.clear()

    fake_github.deny_push(REPO)
    code, error = await alice.post(f"sessions/{sid}/pull-request")
    assert (code, error["code"]) == (403, "github_forbidden") and "read and write access" in error["message"]

    token = fake_github.token
    fake_github.revoke_token()
    code, error = await alice.post(f"sessions/{sid}/pull-request")
    assert (code, error["code"]) == (403, "github_bad_token") and "revoked" in error["message"]
    assert token not in error["message"]
    assert fake_github.pulls == [] and hub.store.artifacts(sid) == []
    assert not [e for e in await alice.events(sid) if e["type"] == "pull_request"]


async def test_another_user_is_refused(
    alice: Api, bob: Api, hub: Any, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path
) -> None:
    session = await alice.new_session(project)
    stage_work(hub, git_http, session, tmp_path)
    assert (await alice.post(f"sessions/{session['id']}/pull-request"))[0] == 201
    for call in (bob.post(f"sessions/{session['id']}/pull-request"), bob.get(f"sessions/{session['id']}/artifacts"),
                 bob.get(f"sessions/{session['id']}/pull-request/draft")):  # fmt: skip
        code, error = await call
        assert (code, error["code"]) == (404, "unknown_session")
    assert len(fake_github.pulls) == 1 and len(hub.store.artifacts(session["id"])) == 1


async def test_an_answer_that_breaks_githubs_contract_is_a_clear_502_and_loses_nothing(
    alice: Api, hub: Any, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path
) -> None:
    fake_github.tamper["repos/list-for-authenticated-user"] = lambda answer: Broken(b"<html>Unicorn!</html>")
    code, error = await alice.get("github/repos")
    assert (code, error["code"]) == (502, "github_bad_answer")
    assert error["message"] == f"the git host ({urlsplit(fake_github.url).netloc}) answered user/repos with something that is not JSON"

    session = await alice.new_session(project)
    stage_work(hub, git_http, session, tmp_path)
    sid = session["id"]
    numberless = {"pulls/create": lambda answer: Broken({k: v for k, v in answer.items() if k != "number"})}
    fake_github.tamper.update(numberless)
    code, error = await alice.post(f"sessions/{sid}/pull-request")
    assert (code, error["code"]) == (502, "github_bad_answer") and "not a pull request (no number" in error["message"]
    assert hub.store.artifacts(sid) == []

    fake_github.tamper.clear()
    fake_github.pulls.clear()
    code, answer = await alice.post(f"sessions/{sid}/pull-request")
    assert code == 201, answer
    # A refresh answered with a numberless pull request leaves the stored one as it was.
    fake_github.tamper["pulls/get"] = lambda answer: Broken({k: v for k, v in answer.items() if k != "number"})
    fake_github.merge_pull(REPO, 1)
    code, listed = await alice.get(f"sessions/{sid}/artifacts")
    assert code == 200 and [(a["number"], a["state"]) for a in listed["artifacts"]] == [(1, "open")]
    assert fake_github.errors == []


class TestWithoutAToken:
    @pytest.fixture
    def github_token(self) -> str:
        return ""

    async def test_nothing_is_asked_of_the_host(
        self, alice: Api, hub: Any, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path
    ) -> None:
        code, listing = await alice.get("github/repos")
        assert (code, listing) == (200, {"configured": False, "repos": []})
        session = await alice.new_session(project)
        stage_work(hub, git_http, session, tmp_path)
        code, error = await alice.post(f"sessions/{session['id']}/pull-request")
        assert (code, error["code"]) == (400, "github_no_token")
        assert "c.GitHub.token or the server's GITHUB_TOKEN" in error["message"]
        assert fake_github.requests == []



class ReadOnly(Authorizer):
    """May look at cloudws, never change it."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource == "cloudws" and action == "read"


class TestAReadOnlyUser:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict) -> dict:
        return {**jp_server_config, "ServerApp": {**jp_server_config["ServerApp"], "authorizer_class": ReadOnly}}

    async def test_may_list_but_not_open_a_pull_request(
        self, alice: Api, hub: Any, fake_github: FakeGitHub, git_http: GitHttpServer, project: str, tmp_path: Path
    ) -> None:
        session = hub.create_session({"repo": project}, owner="alice")
        stage_work(hub, git_http, session, tmp_path)
        assert (await alice.get("github/repos"))[0] == 200
        assert (await alice.get("github/repos/octo-user/project/branches"))[0] == 200
        assert (await alice.get(f"sessions/{session['id']}/artifacts")) == (200, {"artifacts": []})
        code, refused = await alice.post(f"sessions/{session['id']}/pull-request")
        assert code == 403 and refused["code"]
        assert fake_github.pulls == [] and hub.store.artifacts(session["id"]) == []
