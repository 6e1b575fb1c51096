"""``client.github_repos()`` and ``client.github_branches()``, the new-session form's lists, against
a real jupyter-server and the fake GitHub held to GitHub's OpenAPI description; and a server without
a token, which says it is not configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from client_helpers import server_config
from support import git

from jupyter_cloudws.client import Client, CloudwsError
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic
from jupyter_cloudws.testing.fake_github import FakeGitHub
from jupyter_cloudws.testing.git_http import GitHttpServer
from jupyter_cloudws.testing.server import ServerProcess


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def start_server(config: dict[str, Any]) -> Client:
        with FakeAnthropic() as fake:  # the sandboxes are never started: only its URL is configured
            proc = ServerProcess(tmp_path / f"server{len(started)}", cloudws_config=server_config(fake), config=config)
        started.append(proc.start())
        return Client(proc.url, proc.token)

    yield start_server
    for proc in started:
        proc.stop()


def test_the_repositories_newest_push_first_and_a_chosen_ones_branches(
    start: Any, fake_github: FakeGitHub, git_http: GitHttpServer, tmp_path: Path
) -> None:  # fmt: skip
    for name, pushed_at, private in (("octo-user/old", 1_000, False), ("octo-user/new", 2_000, True)):
        git_http.make_remote(name)
        fake_github.add_repo(name, private=private, pushed_at=pushed_at, description=f"the {name[10:]} one")
    work = tmp_path / "work"
    git("clone", "--quiet", git_http.url_for("octo-user/new"), str(work))
    git("push", "--quiet", "origin", "HEAD:refs/heads/dev", cwd=work)
    with start({"GitHub": {"url": git_http.url, "api_url": fake_github.url, "token": fake_github.token}}) as client:
        listed = client.github_repos()
        assert listed["configured"] is True
        assert [(r["full_name"], r["private"]) for r in listed["repos"]] == [("octo-user/new", True),
                                                                              ("octo-user/old", False)]  # fmt: skip
        assert listed["repos"][0]["clone_url"] == git_http.url_for("octo-user/new")
        assert [r["full_name"] for r in client.github_repos(q="old one")["repos"]] == ["octo-user/old"]
        assert client.github_branches("octo-user/new") == {
            "default_branch": "main",
            "branches": [{"name": "main", "protected": False}, {"name": "dev", "protected": False}],
        }
        with pytest.raises(CloudwsError) as info:
            client.github_branches("octo-user/nothing")
        assert (info.value.status, info.value.code) == (404, "github_not_found")
        with pytest.raises(ValueError, match="OWNER/NAME"):
            client.github_branches("octo-user/new/extra")
    assert fake_github.errors == []


def test_a_server_without_a_token_is_not_configured(start: Any) -> None:
    with start({"GitHub": {"token": ""}}) as client:  # whatever GITHUB_TOKEN the tests run with
        assert client.github_repos() == {"configured": False, "repos": []}
