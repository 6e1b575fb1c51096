"""The fake GitHub is held to GitHub's published contract (the OpenAPI description in
``@octokit/openapi``): its answers validate against each operation's schema, the check rejects a
wrong answer and a wrong request, and its errors have GitHub's shape."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_cloudws.testing.fake_github import FakeGitHub
from jupyter_cloudws.testing.git_http import GitHttpServer
from jupyter_cloudws.testing.github_contract import (
    OPERATIONS,
    SPEC_ENV,
    Contract,
    ContractError,
    SpecMissing,
    default_contract,
    load_spec,
)
from github_helpers import REPO, push_branch
from support import git

def call(fake: FakeGitHub, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {fake.token}", **kwargs.pop("headers", {})}
    return httpx.request(method, fake.url + path, headers=headers, **kwargs)


@pytest.fixture
def served(fake_github: FakeGitHub, git_http: GitHttpServer, tmp_path: Path) -> FakeGitHub:
    git_http.make_remote(REPO, {"README.md": "# project\n"})
    fake_github.add_repo(REPO, private=True, description="the project")
    push_branch(git_http, REPO, "feature", tmp_path, {"a.py": "print(1)\n"})
    return fake_github


def test_every_answer_is_built_from_the_example_and_validates(served: FakeGitHub, git_http: GitHttpServer) -> None:
    repos = call(served, "GET", "/user/repos").json()
    assert [r["full_name"] for r in repos] == [REPO]
    assert repos[0]["private"] is True and repos[0]["clone_url"] == git_http.url_for(REPO)
    assert call(served, "GET", f"/repos/{REPO}").json()["default_branch"] == "main"
    branches = {b["name"]: b["commit"]["sha"] for b in call(served, "GET", f"/repos/{REPO}/branches").json()}
    heads = git("for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads", cwd=git_http.path_for(REPO))
    assert branches == dict(line.split() for line in heads.splitlines())
    created = call(served, "POST", f"/repos/{REPO}/pulls", json={"title": "Add a", "head": "feature", "base": "main"})
    assert created.status_code == 201, created.text
    assert created.headers["Location"].endswith(f"/repos/{REPO}/pulls/1")
    assert created.json()["head"]["sha"] == branches["feature"] and created.json()["state"] == "open"
    assert call(served, "GET", f"/repos/{REPO}/pulls/1").json()["merged"] is False
    served.merge_pull(REPO, 1)
    listed = call(served, "GET", f"/repos/{REPO}/pulls", params={"state": "all", "head": "octo-user:feature"}).json()
    assert [(p["number"], p["state"], p["merged_at"] is not None) for p in listed] == [(1, "closed", True)]
    assert [r["status"] for r in served.requests] == [200, 200, 200, 201, 200, 200]
    # Every answer above passed its schema check on the way out: none was turned into a 500.
    assert served.errors == []


def test_the_check_rejects_a_wrong_answer(served: FakeGitHub) -> None:
    contract = default_contract()
    pull = call(served, "POST", f"/repos/{REPO}/pulls", json={"title": "t", "head": "feature", "base": "main"}).json()
    contract.check_response("pulls/get", 200, pull)
    for broken in ({k: v for k, v in pull.items() if k != "number"}, {**pull, "state": 3},
                   {**pull, "head": {**pull["head"], "sha": None}}):  # fmt: skip
        with pytest.raises(ContractError):
            contract.check_response("pulls/get", 200, broken)
    # The fake's own answers go through the same check: a tampered one becomes a 500 and is recorded.
    served.tamper["pulls/get"] = lambda answer: {k: v for k, v in answer.items() if k != "user"}
    answer = call(served, "GET", f"/repos/{REPO}/pulls/1")
    assert answer.status_code == 500 and "user" in answer.json()["message"]
    assert len(served.errors) == 1 and "pulls/get 200" in served.errors[0]


def test_a_request_body_against_the_schema_is_refused_with_422(served: FakeGitHub) -> None:
    answer = call(served, "POST", f"/repos/{REPO}/pulls", json={"title": 7, "head": "feature", "base": "main"})
    assert answer.status_code == 422 and answer.json()["message"].startswith("Invalid request.")
    assert served.errors and served.errors[0].startswith("request: pulls/create request")
    assert served.pulls == []


@pytest.mark.parametrize("header, message", [(None, "Requires authentication"), ("Bearer nope", "Bad credentials"),
                                             ("Basic abc", "Requires authentication")])  # fmt: skip
def test_a_request_without_the_token_gets_githubs_401(served: FakeGitHub, header: str | None, message: str) -> None:
    answer = httpx.get(served.url + "/user/repos", headers={"Authorization": header} if header else {})
    assert answer.status_code == 401
    assert answer.json() == {"message": message, "documentation_url": "https://docs.github.com/rest", "status": "401"}
    assert served.errors == []  # the error body met the operation's 401 schema
    assert call(served, "GET", "/user/repos", headers={"Authorization": f"token {served.token}"}).status_code == 200


def test_refusals_have_githubs_shapes(served: FakeGitHub, git_http: GitHttpServer) -> None:
    pulls = f"/repos/{REPO}/pulls"
    assert call(served, "GET", "/repos/octo-user/missing").json()["message"] == "Not Found"
    no_commits = call(served, "POST", pulls, json={"title": "t", "head": "main", "base": "main"})
    assert no_commits.status_code == 422
    assert no_commits.json()["errors"][0]["message"] == "No commits between main and main"
    missing = call(served, "POST", pulls, json={"title": "t", "head": "nope", "base": "main"}).json()
    assert missing["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
    assert call(served, "POST", pulls, json={"title": "t", "head": "feature", "base": "main"}).status_code == 201
    again = call(served, "POST", pulls, json={"title": "t", "head": "feature", "base": "main"}).json()
    assert again["errors"][0]["message"] == "A pull request already exists for octo-user:feature."
    served.protect_branch(REPO, "main")
    served.close_pull(REPO, 1)
    protected = call(served, "POST", pulls, json={"title": "t", "head": "feature", "base": "main"})
    assert protected.status_code == 422 and "protected" in protected.json()["errors"][0]["message"]
    served.deny_push(REPO)
    assert call(served, "POST", pulls, json={"title": "t", "head": "feature", "base": "main"}).status_code == 403
    served.exhaust_rate_limit()
    limited = call(served, "GET", "/user/repos")
    assert limited.status_code == 403 and limited.headers["X-RateLimit-Remaining"] == "0"
    assert served.errors == []


def test_lists_are_paginated_with_link_headers(served: FakeGitHub, git_http: GitHttpServer) -> None:
    bare = git_http.path_for(REPO)
    head = git("rev-parse", "main", cwd=bare)
    subprocess.run(["git", "update-ref", "--stdin"], cwd=bare, check=True, text=True,
                   input="".join(f"create refs/heads/b{i:03d} {head}\n" for i in range(25)))  # fmt: skip
    first = call(served, "GET", f"/repos/{REPO}/branches", params={"per_page": 10})
    assert len(first.json()) == 10
    assert f'{served.url}/repos/{REPO}/branches?per_page=10&page=2>; rel="next"' in first.headers["Link"]
    assert 'page=3>; rel="last"' in first.headers["Link"]
    last = call(served, "GET", f"/repos/{REPO}/branches", params={"per_page": 10, "page": 3})
    assert len(last.json()) == 7 and 'rel="next"' not in last.headers["Link"]  # 25 + main + feature


def test_without_the_description_the_fake_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SPEC_ENV, str(tmp_path / "absent.json"))
    with pytest.raises(SpecMissing, match=r"scripts/test.sh fetches it \(npm pack @octokit/openapi@23.0.2"):
        load_spec()
    with pytest.raises(SpecMissing):
        default_contract()


def test_each_served_operation_is_in_the_description() -> None:
    contract = Contract(load_spec())
    for operation_id in OPERATIONS:
        assert contract.operation(operation_id)["operationId"] == operation_id
        assert contract.example(operation_id)


def test_one_token_serves_git_and_the_api(tmp_path: Path) -> None:
    with GitHttpServer(tmp_path / "private", token="ghp_private_repo_token") as private, FakeGitHub(private) as fake:
        private.make_remote(REPO)
        fake.add_repo(REPO, private=True)
        assert fake.token == "ghp_private_repo_token"
        assert call(fake, "GET", "/user/repos").json()[0]["private"] is True
        assert fake.errors == []
