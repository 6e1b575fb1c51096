"""Git as the sandbox uses it, against a real bare repository standing in for the remote."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cloudws_sandbox import gitops
from cloudws_sandbox.gitops import Author, GitError

AUTHOR = Author("Claude Code", "claude@example.invalid")
SEED_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Seeder", "GIT_AUTHOR_EMAIL": "seed@example.invalid",
    "GIT_COMMITTER_NAME": "Seeder", "GIT_COMMITTER_EMAIL": "seed@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}  # fmt: skip


def run(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=SEED_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def remote(tmp_path) -> Path:
    """A bare 'origin' whose main branch holds one commit with README.md."""
    bare = tmp_path / "origin.git"
    run("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
    seed = tmp_path / "seed"
    run("init", "--quiet", "--initial-branch=main", str(seed), cwd=tmp_path)
    (seed / "README.md").write_text("# widgets\n")
    run("add", "README.md", cwd=seed)
    run("commit", "--quiet", "-m", "Initial commit", cwd=seed)
    run("push", "--quiet", str(bare), "main:main", cwd=seed)
    return bare


def main_sha(remote: Path) -> str:
    return run("rev-parse", "refs/heads/main", cwd=remote)


async def cloned(remote: Path, dest: Path) -> str:
    await gitops.clone(str(remote), str(dest))
    return str(dest)


async def test_clone_and_default_branch(remote, tmp_path):
    (tmp_path / "sandbox").mkdir()
    work = await cloned(remote, tmp_path / "sandbox" / "repo")
    assert (Path(work) / "README.md").read_text() == "# widgets\n"
    assert await gitops.default_branch(work) == "main"
    assert await gitops.head_sha(work) == main_sha(remote)


async def test_clone_of_a_missing_repository_fails_with_git_error(tmp_path):
    with pytest.raises(GitError, match="clone"):
        await gitops.clone(str(tmp_path / "nowhere.git"), str(tmp_path / "repo"))


async def test_prepare_branch_starts_a_new_session_branch_from_main(remote, tmp_path):
    work = await cloned(remote, tmp_path / "repo")
    base = await gitops.prepare_branch(work, "main", "cloudws/x")
    assert base == "main"
    assert run("symbolic-ref", "--short", "HEAD", cwd=Path(work)) == "cloudws/x"
    assert await gitops.head_sha(work) == main_sha(remote)


async def test_prepare_branch_without_a_base_uses_the_default_branch(remote, tmp_path):
    work = await cloned(remote, tmp_path / "repo")
    assert await gitops.prepare_branch(work, "", "cloudws/y") == "main"
    assert run("symbolic-ref", "--short", "HEAD", cwd=Path(work)) == "cloudws/y"


async def test_a_fresh_sandbox_continues_the_branch_an_earlier_one_pushed(remote, tmp_path):
    # The first sandbox does some work and pushes it.
    first = await cloned(remote, tmp_path / "first")
    await gitops.prepare_branch(first, "main", "cloudws/x")
    (Path(first) / "notes.md").write_text("progress\n")
    assert await gitops.commit_all(first, "Add notes", AUTHOR) is True
    await gitops.push(first, "cloudws/x", gitops.Upstream(str(remote), str(tmp_path / "net-first.git")))
    pushed = await gitops.head_sha(first)
    assert pushed != main_sha(remote)

    # It dies; a new sandbox clones the repository and picks the branch up where it was.
    second = await cloned(remote, tmp_path / "second")
    await gitops.prepare_branch(second, "main", "cloudws/x")
    assert await gitops.head_sha(second) == pushed
    assert (Path(second) / "notes.md").read_text() == "progress\n"
    assert run("symbolic-ref", "--short", "HEAD", cwd=Path(second)) == "cloudws/x"


async def test_a_missing_base_branch_is_an_error(remote, tmp_path):
    work = await cloned(remote, tmp_path / "repo")
    with pytest.raises(GitError, match="release-9"):
        await gitops.prepare_branch(work, "release-9", "cloudws/x")


async def test_an_empty_repository_gets_an_orphan_branch(tmp_path):
    bare = tmp_path / "empty.git"
    run("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
    work = await cloned(bare, tmp_path / "repo")
    await gitops.prepare_branch(work, "main", "cloudws/new")
    (Path(work) / "a.txt").write_text("a\n")
    assert await gitops.commit_all(work, "First", AUTHOR) is True
    assert run("symbolic-ref", "--short", "HEAD", cwd=Path(work)) == "cloudws/new"


async def test_commit_all_commits_only_when_something_changed(remote, tmp_path):
    work = await cloned(remote, tmp_path / "repo")
    await gitops.prepare_branch(work, "main", "cloudws/x")
    before = await gitops.head_sha(work)
    assert await gitops.commit_all(work, "Nothing", AUTHOR) is False
    assert await gitops.head_sha(work) == before

    (Path(work) / "README.md").write_text("# widgets\n\nNow documented.\n")
    (Path(work) / "src").mkdir()
    (Path(work) / "src" / "new.py").write_text("print('hi')\n")  # untracked files are included
    assert await gitops.commit_all(work, "Document widgets\n\nbody", AUTHOR) is True
    after = await gitops.head_sha(work)
    assert after != before
    assert run("log", "-1", "--format=%an <%ae>|%cn|%s", cwd=Path(work)) == (
        "Claude Code <claude@example.invalid>|Claude Code|Document widgets"
    )
    assert run("show", "--name-only", "--format=", "HEAD", cwd=Path(work)).split() == ["README.md", "src/new.py"]
    assert run("status", "--porcelain", cwd=Path(work)) == ""
    assert await gitops.commit_all(work, "Again", AUTHOR) is False


async def test_deleting_a_file_counts_as_a_change(remote, tmp_path):
    work = await cloned(remote, tmp_path / "repo")
    await gitops.prepare_branch(work, "main", "cloudws/x")
    (Path(work) / "README.md").unlink()
    assert await gitops.commit_all(work, "Remove README", AUTHOR) is True
    assert run("ls-tree", "--name-only", "HEAD", cwd=Path(work)) == ""


async def test_push_lands_the_branch_in_the_remote(remote, tmp_path):
    work = await cloned(remote, tmp_path / "repo")
    await gitops.prepare_branch(work, "main", "cloudws/x")
    (Path(work) / "CHANGELOG.md").write_text("- things\n")
    await gitops.commit_all(work, "Add changelog", AUTHOR)
    upstream = gitops.Upstream(str(remote), str(tmp_path / "state" / "net.git"))
    await gitops.push(work, "cloudws/x", upstream)
    assert run("rev-parse", "refs/heads/cloudws/x", cwd=remote) == await gitops.head_sha(work)
    assert run("rev-parse", "refs/heads/main", cwd=remote) != await gitops.head_sha(work)  # main untouched
    # Pushing again with nothing new is fine.
    await gitops.push(work, "cloudws/x", upstream)


async def test_git_errors_do_not_leak_credentials(remote, tmp_path):
    work = await cloned(remote, tmp_path / "repo")
    url = "https://bob:s3cret-token@example.invalid/widgets.git"
    with pytest.raises(GitError) as info:
        await gitops.git("checkout", url, cwd=work)  # git echoes this argument verbatim on stderr
    assert "s3cret-token" not in str(info.value)
    assert "bob" not in str(info.value)
    assert "https://example.invalid/widgets.git" in str(info.value)


class TestCommitMessage:
    def test_the_subject_is_the_first_non_empty_prompt_line(self):
        msg = gitops.commit_message("\n\n  Add a README  \nwith install steps\n", "sess-1")
        subject, blank, rest = msg.split("\n", 2)
        assert subject == "Add a README"
        assert blank == ""
        assert "Add a README  \nwith install steps" in rest
        assert msg.endswith("\n\nCloudws-Session: sess-1\n")

    def test_a_long_first_line_is_cut_to_72_characters_with_an_ellipsis(self):
        long_line = "Refactor " + "the widget factory " * 10
        msg = gitops.commit_message(long_line + "\nsecond line", "sess-2")
        subject = msg.split("\n", 1)[0]
        assert len(subject) == 72
        assert subject.endswith("…")
        assert subject[:-1] == long_line[:71]
        assert long_line.strip() in msg  # the whole prompt is in the body

    def test_a_first_line_of_exactly_72_characters_is_kept_whole(self):
        line = "x" * 72
        assert gitops.commit_message(line, "s").split("\n", 1)[0] == line

    def test_a_custom_subject_limit(self):
        assert gitops.commit_message("abcdefghij", "s", max_subject_chars=5).split("\n", 1)[0] == "abcd…"

    def test_a_blank_prompt_still_gets_a_subject_and_trailer(self):
        msg = gitops.commit_message("  \n ", "sess-3")
        assert msg.startswith("Claude Code changes\n")
        assert "Cloudws-Session: sess-3" in msg

    def test_a_huge_prompt_body_is_shortened(self):
        msg = gitops.commit_message("go\n" + "y" * 10_000, "sess-4")
        assert len(msg) < 4200
        assert "\n…\n\nCloudws-Session: sess-4\n" in msg

    def test_the_trailer_is_parseable_by_git(self, tmp_path):
        repo = tmp_path / "r"
        run("init", "--quiet", str(repo), cwd=tmp_path)
        msg = gitops.commit_message("Fix bug\n\nDetails here", "abc123")
        run("commit", "--quiet", "--allow-empty", "-m", msg, cwd=repo)
        assert run("log", "-1", "--format=%(trailers:key=Cloudws-Session,valueonly)", cwd=repo) == "abc123"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("https://user:ghp_abc123@github.com/octo/widgets.git", "https://github.com/octo/widgets.git"),
        ("https://x-access-token:tok@github.com/o/r", "https://github.com/o/r"),
        ("https://token@host/repo", "https://host/repo"),
        (
            "fatal: unable to access 'https://a:b@h.example/r.git/': timeout; retry https://c:d@h.example/r",
            "fatal: unable to access 'https://h.example/r.git/': timeout; retry https://h.example/r",
        ),
        ("https://github.com/octo/widgets.git", "https://github.com/octo/widgets.git"),
        ("git@github.com:octo/widgets.git", "git@github.com:octo/widgets.git"),  # scp-style: no secret
        ("mail me at ada@example.com", "mail me at ada@example.com"),
    ],
)
def test_redact_removes_credentials_from_urls(text, expected):
    assert gitops.redact(text) == expected
