"""The git HTTP server tests use as a code host: the real ``git http-backend`` behind a threaded
server, exercised by the real git client (clone, push, fetch, large and compressed bodies, auth)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from jupyter_cloudws.testing.git_http import GitHttpServer

IDENTITY = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.test",
            "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.test"}  # fmt: skip


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    # No prompt for credentials: a refused request must fail, not wait for a terminal.
    env = {**os.environ, **IDENTITY, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=check, capture_output=True, text=True, timeout=60)


def test_clone_push_a_branch_and_fetch_it_back(git_http: GitHttpServer, tmp_path: Path) -> None:
    url = git_http.make_remote("project", {"README.md": "# project\n", "src/a.py": "A = 1\n"})
    assert url == f"{git_http.url}/project.git"
    work = tmp_path / "work"
    git("clone", "--quiet", url, str(work))
    assert (work / "src" / "a.py").read_text() == "A = 1\n"
    assert git("branch", "--show-current", cwd=work).stdout.strip() == "main"

    git("switch", "--quiet", "-c", "feature", cwd=work)
    (work / "b.txt").write_text("bee\n")
    git("add", "b.txt", cwd=work)
    git("commit", "--quiet", "-m", "add b", cwd=work)
    git("push", "--quiet", "origin", "feature", cwd=work)
    pushed = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    # It reached the bare repository on the server's disk, not just a cache.
    assert git("--git-dir", str(git_http.path_for("project")), "rev-parse", "feature").stdout.strip() == pushed

    other = tmp_path / "other"
    git("clone", "--quiet", url, str(other))
    git("fetch", "--quiet", "origin", "feature", cwd=other)
    assert git("rev-parse", "FETCH_HEAD", cwd=other).stdout.strip() == pushed
    assert git("show", "FETCH_HEAD:b.txt", cwd=other).stdout == "bee\n"
    assert any(r["path"] == "/project.git/git-receive-pack" and r["status"] == 200 for r in git_http.requests)


def test_a_push_larger_than_the_post_buffer_goes_chunked_and_lands_whole(git_http: GitHttpServer, tmp_path: Path) -> None:
    url = git_http.make_remote("big")
    work = tmp_path / "work"
    git("clone", "--quiet", url, str(work))
    blob = os.urandom(3 * 1024 * 1024)  # incompressible: the pack is as large as the file
    (work / "blob.bin").write_bytes(blob)
    git("add", "blob.bin", cwd=work)
    git("commit", "--quiet", "-m", "big", cwd=work)
    git("-c", "http.postBuffer=65536", "push", "--quiet", "origin", "main", cwd=work)

    pushes = [r for r in git_http.requests if r["path"].endswith("/git-receive-pack") and r["method"] == "POST"]
    assert pushes and pushes[-1]["chunked"] and pushes[-1]["status"] == 200, pushes
    fresh = tmp_path / "fresh"
    git("clone", "--quiet", url, str(fresh))
    assert (fresh / "blob.bin").read_bytes() == blob


def test_a_large_fetch_negotiation_is_sent_gzipped_and_understood(git_http: GitHttpServer, tmp_path: Path) -> None:
    url = git_http.make_remote("many")
    work = tmp_path / "work"
    git("clone", "--quiet", url, str(work))
    for n in range(40):  # 40 branches at 40 commits: a clone's "want" lines exceed 1 KiB
        git("commit", "--quiet", "--allow-empty", "-m", f"c{n}", cwd=work)
        git("branch", f"b{n}", cwd=work)
    git("push", "--quiet", "origin", "--all", cwd=work)

    fresh = tmp_path / "fresh"
    git("clone", "--quiet", "--no-single-branch", url, str(fresh))
    assert git("rev-parse", "origin/b39", cwd=fresh).stdout == git("rev-parse", "b39", cwd=work).stdout
    fetches = [r for r in git_http.requests if r["path"].endswith("/git-upload-pack") and r["method"] == "POST"]
    assert any(r["content_encoding"] == "gzip" and r["status"] == 200 for r in fetches), fetches


@pytest.fixture
def private_git(tmp_path: Path):
    with GitHttpServer(tmp_path / "private", token="s3cret-token") as server:
        yield server


def test_without_the_token_a_private_server_refuses_and_with_it_serves(private_git: GitHttpServer, tmp_path: Path) -> None:
    url = private_git.make_remote("secret")
    refused = git("clone", url, str(tmp_path / "refused"), check=False)
    assert refused.returncode != 0 and not (tmp_path / "refused").exists()
    assert private_git.requests and {r["status"] for r in private_git.requests} == {401}
    wrong = git("-c", "http.extraHeader=Authorization: Bearer wrong", "clone", url, str(tmp_path / "wrong"), check=False)
    assert wrong.returncode != 0

    work = tmp_path / "work"
    git("-c", "http.extraHeader=Authorization: Bearer s3cret-token", "clone", "--quiet", url, str(work))
    assert (work / "README.md").read_text() == "# secret\n"
    basic = url.replace("http://", "http://anyone:s3cret-token@")
    (work / "c.txt").write_text("c\n")
    git("add", "c.txt", cwd=work)
    git("commit", "--quiet", "-m", "c", cwd=work)
    git("push", "--quiet", basic, "main", cwd=work)
    assert git("--git-dir", str(private_git.path_for("secret")), "log", "--format=%s", "-1").stdout.strip() == "c"
    refused_push = git("push", url, "main:other", cwd=work, check=False)
    assert refused_push.returncode != 0
    assert "other" not in git("--git-dir", str(private_git.path_for("secret")), "branch").stdout
