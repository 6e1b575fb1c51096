"""``session.create_pull_request()``, ``pull_request_draft()``, ``artifacts()`` and ``%cloudws pr``
end to end: a real jupyter-server, the real Claude Code CLI in a local sandbox pushing to a real
git host, and the fake GitHub held to GitHub's OpenAPI description."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from client_helpers import sandboxes_dir, server_config
from IPython.core.interactiveshell import InteractiveShell
from support import kill_sandboxes

from jupyter_cloudws.client import Client, CloudwsError, PullRequest
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text, tool_use
from jupyter_cloudws.testing.fake_github import FakeGitHub
from jupyter_cloudws.testing.git_http import GitHttpServer
from jupyter_cloudws.testing.server import ServerProcess

REPO = "octo-user/project"
WAIT_S = 120


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        fake.on("add a license", tool_use("Write", {"file_path": "LICENSE", "content": "MIT\n"}), text("Added LICENSE."))
        yield fake


@pytest.fixture
def server(tmp_path: Path, fake: FakeAnthropic, fake_github: FakeGitHub, git_http: GitHttpServer) -> Iterator[ServerProcess]:
    config = {"GitHub": {"url": git_http.url, "api_url": fake_github.url, "token": fake_github.token}}
    proc = ServerProcess(tmp_path / "server", cloudws_config=server_config(fake), config=config).start()
    try:
        yield proc
    finally:
        proc.stop()
        kill_sandboxes(sandboxes_dir(tmp_path / "server"))


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token) as client:
        yield client


def test_a_pull_request_is_drafted_opened_once_and_followed(
    client: Client, fake_github: FakeGitHub, git_http: GitHttpServer
) -> None:  # fmt: skip
    project = git_http.make_remote(REPO, {"README.md": "# project\n"})
    fake_github.add_repo(REPO, private=True)
    session = client.new_session(project)

    with pytest.raises(CloudwsError) as info:  # nothing pushed yet: the hub's reason, not a traceback
        session.create_pull_request()
    assert (info.value.status, info.value.code) == (409, "not_pushed") and "send a prompt" in info.value.message

    session.prompt("Please add a license")
    session.wait(WAIT_S)
    assert session.changes().summary() == "1 file changed +1 −0"
    draft = session.pull_request_draft()
    assert draft["title"] == "Please add a license" and "Added LICENSE." in draft["body"]
    assert session.artifacts() == [] and session.pull_request() is None

    pr = session.create_pull_request(title="Add the MIT license", draft=True)
    assert isinstance(pr, PullRequest) and pr.created is True
    assert (pr.number, pr.state, pr.title, pr.base, pr.head) == (1, "draft", "Add the MIT license", "main", session.branch)
    assert pr.url == f"{git_http.url}/{REPO}/pull/1"
    assert fake_github.pull(REPO, 1).body == draft["body"]  # the drafted body, as no other was given

    again = session.create_pull_request(title="A second one?")
    assert (again.number, again.created) == (1, False) and len(fake_github.pulls) == 1

    fake_github.merge_pull(REPO, 1)
    (listed,) = session.artifacts()
    assert (listed.number, listed.state, listed.id) == (1, "merged", pr.id)
    assert session.pull_request().state == "merged"
    assert fake_github.errors == []


def test_pr_magic_prints_the_hosts_refusal_then_opens_and_links(
    server: ServerProcess, fake_github: FakeGitHub, git_http: GitHttpServer, monkeypatch, capsys
) -> None:  # fmt: skip
    project = git_http.make_remote(REPO, {"README.md": "# project\n"})
    fake_github.add_repo(REPO)
    fake_github.protect_branch(REPO, "main")
    monkeypatch.setenv("CLOUDWS_URL", server.url)
    monkeypatch.setenv("CLOUDWS_TOKEN", server.token)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_cloudws")
    try:
        shell.run_line_magic("cloudws", f"new {project}")
        shell.run_line_magic("cloudws", "--wait Please add a license")
        capsys.readouterr()

        shell.run_line_magic("cloudws", "pr")
        captured = capsys.readouterr()
        assert captured.err.startswith("cloudws: ") and "HTTP 422" in captured.err, captured
        assert "Traceback" not in captured.err + captured.out and fake_github.pulls == []

        fake_github.repos[REPO].protected.discard("main")  # the owner lifts the rule
        shell.run_line_magic("cloudws", 'pr --draft --title "Add the MIT license"')
        url = f"{git_http.url}/{REPO}/pull/1"
        assert capsys.readouterr().out.strip() == f"Opened pull request #1 as a draft: {url}"
        assert fake_github.pull(REPO, 1).title == "Add the MIT license"
        shell.run_line_magic("cloudws", "pr")
        assert capsys.readouterr().out.strip() == f"The branch already has pull request #1 (draft): {url}"
        assert fake_github.errors == []
    finally:
        magics = shell.find_magic("cloudws").__self__
        if magics._client is not None:
            magics._client.close()
        magics._client, magics.session = None, None
