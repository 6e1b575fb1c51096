"""The hub's GitHub client against the fake GitHub: the headers GitHub asks for, pagination with
a bound, and every refusal as a clear sentence that never holds the token."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from jupyter_cloudws.github import GitHub
from jupyter_cloudws.github import api
from jupyter_cloudws.github.api import GitHubClient, GitHubError, pull_state
from jupyter_cloudws.testing.fake_github import Broken, FakeGitHub
from jupyter_cloudws.testing.git_http import GitHttpServer
from support import git
from github_helpers import REPO, push_branch


@pytest.fixture
def served(fake_github: FakeGitHub, git_http: GitHttpServer, tmp_path: Path) -> FakeGitHub:
    git_http.make_remote(REPO)
    fake_github.add_repo(REPO)
    push_branch(git_http, REPO, "feature", tmp_path, {"a.py": "print(1)\n"})
    return fake_github


def settings_for(fake: FakeGitHub, **overrides: object) -> GitHub:
    values = {"url": fake.web_url, "api_url": fake.url, "token": fake.token, **overrides}
    return GitHub(**values)


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def refusal(settings: GitHub, call: str, *args: object, **kwargs: object) -> GitHubError:
    with pytest.raises(GitHubError) as caught:
        async with GitHubClient(settings) as gh:
            await getattr(gh, call)(*args, **kwargs)
    assert settings.token == "" or settings.token not in str(caught.value)
    return caught.value


def test_calls_send_githubs_headers_and_read_real_branches(served: FakeGitHub, git_http: GitHttpServer) -> None:
    async def go() -> tuple[list, list]:
        async with GitHubClient(settings_for(served)) as gh:
            return await gh.list_repos(), await gh.list_branches("octo-user", "project")

    repos, branches = run(go())
    assert [r["full_name"] for r in repos] == [REPO]
    heads = git("for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads", cwd=git_http.path_for(REPO))
    assert {b["name"]: b["commit"]["sha"] for b in branches} == dict(line.split() for line in heads.splitlines())
    assert {(r["auth_scheme"], r["accept"], r["api_version"]) for r in served.requests} == {
        ("Bearer", "application/vnd.github+json", "2022-11-28")}
    assert served.requests[0]["query"] == {"per_page": "100", "sort": "pushed", "direction": "desc"}
    assert served.errors == []


def test_pagination_follows_link_headers_up_to_its_bound(served: FakeGitHub, git_http: GitHttpServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    bare = git_http.path_for(REPO)
    head = git("rev-parse", "main", cwd=bare)
    subprocess.run(["git", "update-ref", "--stdin"], cwd=bare, check=True, text=True,
                   input="".join(f"create refs/heads/b{i:03d} {head}\n" for i in range(23)))  # fmt: skip
    monkeypatch.setattr(api, "PER_PAGE", 10)

    async def names() -> list[str]:
        async with GitHubClient(settings_for(served)) as gh:
            return [b["name"] for b in await gh.list_branches("octo-user", "project")]

    everything = run(names())
    assert len(everything) == 25 and len(set(everything)) == 25  # 3 pages, nothing twice
    monkeypatch.setattr(api, "MAX_PAGES", 2)
    served.requests.clear()
    assert run(names()) == everything[:20]
    assert len(served.requests) == 2


def test_a_next_link_to_another_host_is_not_followed() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=[{"name": "main"}],
                              headers={"Link": '<https://elsewhere.example/repos/o/r/branches?page=2>; rel="next"'})

    async def go() -> list:
        settings = GitHub(api_url="https://api.example", token="secret-token")
        async with GitHubClient(settings, transport=httpx.MockTransport(answer)) as gh:
            return await gh.list_branches("o", "r")

    assert run(go()) == [{"name": "main"}]
    assert seen == ["https://api.example/repos/o/r/branches?per_page=100"]


def test_refusals_are_clear_sentences(served: FakeGitHub) -> None:
    settings = settings_for(served)
    create = dict(title="t", head="feature", base="main", body="", draft=False)

    missing = run(refusal(settings, "get_repo", "octo-user", "missing"))
    assert (missing.status, missing.code, missing.upstream_status) == (404, "github_not_found", 404)
    assert "no such repository" in missing.message

    no_commits = run(refusal(settings, "create_pull", "octo-user", "project", **{**create, "head": "main"}))
    assert (no_commits.code, no_commits.message) == ("no_commits", "there is nothing to propose: No commits between main and main")

    served.protect_branch(REPO, "main")
    protected = run(refusal(settings, "create_pull", "octo-user", "project", **create))
    assert protected.code == "branch_protection" and "protected branch 'main'" in protected.message
    assert protected.status == 422

    served.deny_push(REPO)
    denied = run(refusal(settings, "create_pull", "octo-user", "project", **create))
    assert (denied.status, denied.code) == (403, "github_forbidden")
    assert "Resource not accessible by personal access token" in denied.message

    served.exhaust_rate_limit()
    limited = run(refusal(settings, "list_repos"))
    assert (limited.status, limited.code) == (429, "github_rate_limited") and "try again later" in limited.message
    served.exhaust_rate_limit(False)

    served.revoke_token()
    revoked = run(refusal(settings, "list_repos"))
    assert (revoked.status, revoked.code) == (403, "github_bad_token")
    assert "wrong, expired or revoked (Bad credentials)" in revoked.message
    assert served.errors == []


@pytest.mark.parametrize("operation, call, args, body, what", [
    ("repos/list-branches", "list_branches", ("octo-user", "project"), b"<html>oops</html>", "not JSON"),
    ("repos/list-branches", "list_branches", ("octo-user", "project"), b"\xff\xfe", "not JSON"),
    ("repos/list-branches", "list_branches", ("octo-user", "project"), {"name": "main"}, "not a JSON list of objects"),
    ("repos/list-branches", "list_branches", ("octo-user", "project"), ["main"], "not a JSON list of objects"),
    ("repos/get", "get_repo", ("octo-user", "project"), ["project"], "not a JSON object"),
    ("pulls/list", "find_pulls", ("octo-user", "project", "feature"), [{"state": "open"}], "not a pull request"),
    ("pulls/get", "get_pull", ("octo-user", "project", 1), {"number": "1", "state": "open"}, "not a pull request"),
    ("pulls/get", "get_pull", ("octo-user", "project", 1), {"number": 1, "state": "open", "base": "main"},
     "not a pull request (a malformed base"),
])  # fmt: skip
def test_an_answer_that_is_not_what_github_sends_is_a_clear_502(
    served: FakeGitHub, operation: str, call: str, args: tuple, body: object, what: str
) -> None:
    async def open_one() -> None:
        async with GitHubClient(settings_for(served)) as gh:
            await gh.create_pull("octo-user", "project", title="t", head="feature", base="main", body="", draft=False)

    run(open_one())  # an answer other than 200 would be refused as the host's error instead
    served.tamper[operation] = lambda answer: Broken(body)
    error = run(refusal(settings_for(served), call, *args))
    assert (error.status, error.code, error.upstream_status) == (502, "github_bad_answer", None)
    assert error.message.startswith(f"the git host ({urlsplit(served.url).netloc}) answered repos/octo-user/project")
    assert f"with something that is {what}" in error.message


def test_no_token_is_refused_before_any_call(served: FakeGitHub) -> None:
    error = run(refusal(settings_for(served, token=""), "list_repos"))
    assert (error.status, error.code) == (400, "github_no_token") and "GITHUB_TOKEN" in error.message
    assert served.requests == []


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_an_unreachable_or_silent_host_is_named(silent_port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # bound, never listening: connections are refused
        unreachable = run(refusal(GitHub(api_url=f"http://127.0.0.1:{closed_port}", token="tok-123"), "list_repos"))
    assert (unreachable.status, unreachable.code) == (502, "github_unreachable")
    assert f"cannot reach 127.0.0.1:{closed_port} (c.GitHub.api_url)" in unreachable.message
    silent = run(refusal(GitHub(api_url=f"http://127.0.0.1:{silent_port}", token="tok-123", request_timeout_s=0.3),
                         "list_repos"))  # fmt: skip
    assert (silent.status, silent.code) == (504, "github_timeout")
    assert "did not answer within 0.3 s (c.GitHub.request_timeout_s)" in silent.message


def test_a_hosts_error_quoting_the_token_is_redacted() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": f"token {request.headers['Authorization'][7:]} lacks scope"})

    async def go() -> None:
        async with GitHubClient(GitHub(api_url="https://api.example", token="ghp_secret"),
                                transport=httpx.MockTransport(answer)) as gh:  # fmt: skip
            await gh.list_repos()

    with pytest.raises(GitHubError) as caught:
        run(go())
    assert "ghp_secret" not in caught.value.message and "token *** lacks scope" in caught.value.message


@pytest.mark.parametrize("pull, state", [
    ({"state": "open", "draft": False, "merged_at": None}, "open"),
    ({"state": "open", "draft": True, "merged_at": None}, "draft"),
    ({"state": "closed", "draft": False, "merged_at": "2026-01-01T00:00:00Z"}, "merged"),
    ({"state": "closed", "draft": True, "merged_at": None}, "closed"),
])  # fmt: skip
def test_pull_state(pull: dict, state: str) -> None:
    assert pull_state(pull) == state
