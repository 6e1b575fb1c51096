"""``checkout()``: the session's branch fetched into a real local clone and switched to, and every
way it refuses (another repository, uncommitted work it would touch, a diverged local branch)
leaving the user's files, branches and HEAD exactly as they were."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import git, make_bare_repo

from jupyter_cloudws.client.checkout import (
    CheckoutRefused,
    checkout,
    choose_remote,
    normalize_repo_url,
    parse_status,
    touched_conflicts,
    valid_branch,
)

BRANCH = "cloudws/abc123"


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare repository with ``main`` and a session branch that edits app.py, adds new.txt and
    a file in a new folder, and deletes old.txt."""
    bare = make_bare_repo(tmp_path, "app", {"app.py": "x = 1\n", "README.md": "# app\n", "old.txt": "old\n"})
    _push_session_commit(tmp_path, bare, {"app.py": "x = 2\n", "new.txt": "from the agent\n", "docs/a.md": "A\n"},
                         delete=["old.txt"])  # fmt: skip
    return bare


def _push_session_commit(
    tmp_path: Path, bare: Path, files: dict[str, str], delete: tuple[str, ...] | list[str] = (), base: str = "main"
) -> str:  # fmt: skip
    """The sandbox's part: a commit on BRANCH (from ``base``) pushed to ``bare``; its sha."""
    work = tmp_path / "agent"
    if not work.exists():
        git("clone", "--quiet", str(bare), str(work))
    git("fetch", "--quiet", "origin", cwd=work)
    git("checkout", "--quiet", "-B", BRANCH, f"origin/{base}", cwd=work)
    for rel, content in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(content)
    for rel in delete:
        (work / rel).unlink()
    git("add", "--all", cwd=work)
    git("commit", "--quiet", "-m", "session work", cwd=work)
    git("push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


@pytest.fixture
def clone(tmp_path: Path, origin: Path) -> Path:
    """The user's clone, on main."""
    user = tmp_path / "user" / "app"
    git("clone", "--quiet", str(origin), str(user))
    return user


def _state(clone: Path) -> tuple[str, dict[str, str], str]:
    """HEAD's branch, every local branch's sha, and ``git status``: what must not move on a refusal."""
    branches = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", cwd=clone)
    return git("symbolic-ref", "--short", "HEAD", cwd=clone), dict(b.split() for b in branches.splitlines()), git(
        "status", "--porcelain", "--untracked-files=all", "--ignored", cwd=clone
    )  # fmt: skip


def _refused(reason: str, clone: Path, **kwargs) -> CheckoutRefused:
    with pytest.raises(CheckoutRefused) as info:
        checkout(str(kwargs.pop("repo")), BRANCH, path=clone, **kwargs)
    assert info.value.reason == reason, info.value
    return info.value


# --- it works -----------------------------------------------------------------------------------


def test_no_switch_only_fetches(clone: Path, origin: Path):
    before = _state(clone)
    result = checkout(str(origin), BRANCH, switch=False, path=clone)
    assert (result.remote, result.switched, result.clone) == ("origin", False, clone)
    assert git("rev-parse", f"refs/remotes/origin/{BRANCH}", cwd=clone) == result.sha
    assert result.sha == git("rev-parse", f"refs/heads/{BRANCH}", cwd=origin)
    assert _state(clone) == before
    assert "unchanged" in str(result)


def test_switch_creates_the_branch_and_carries_untouched_edits_along(clone: Path, origin: Path):
    (clone / "README.md").write_text("# my notes, not committed\n")
    (clone / "scratch.txt").write_text("mine\n")
    result = checkout(str(origin), BRANCH, path=clone)
    assert (result.switched, result.previous) == (True, "main")
    assert git("symbolic-ref", "--short", "HEAD", cwd=clone) == BRANCH
    assert git("rev-parse", "HEAD", cwd=clone) == result.sha
    assert (clone / "app.py").read_text() == "x = 2\n" and (clone / "docs/a.md").read_text() == "A\n"
    assert not (clone / "old.txt").exists()
    assert (clone / "README.md").read_text() == "# my notes, not committed\n"  # the user's edit rides along
    assert (clone / "scratch.txt").read_text() == "mine\n"
    assert str(result).startswith(f"Switched {clone} to {BRANCH}")


def test_the_kernels_directory_inside_the_clone_is_enough(clone: Path, origin: Path, monkeypatch):
    (clone / "notebooks").mkdir()
    monkeypatch.chdir(clone / "notebooks")
    result = checkout(str(origin), BRANCH)
    assert result.clone == clone and result.switched


def test_a_local_branch_behind_the_sessions_fast_forwards(tmp_path: Path, clone: Path, origin: Path):
    first = checkout(str(origin), BRANCH, path=clone).sha
    newer = _push_session_commit(tmp_path, origin, {"app.py": "x = 3\n"}, base=BRANCH)
    # On the branch: fast-forwarded in place.
    result = checkout(str(origin), BRANCH, path=clone)
    assert (result.sha, git("rev-parse", "HEAD", cwd=clone)) == (newer, newer) and result.sha != first
    assert (clone / "app.py").read_text() == "x = 3\n"
    # Not on it: moved (only forward) and switched to.
    git("switch", "--quiet", "main", cwd=clone)
    git("update-ref", f"refs/heads/{BRANCH}", first, cwd=clone)
    result = checkout(str(origin), BRANCH, path=clone)
    assert git("rev-parse", f"refs/heads/{BRANCH}", cwd=clone) == newer
    assert git("symbolic-ref", "--short", "HEAD", cwd=clone) == BRANCH and result.previous == "main"


def test_the_clone_that_is_the_sessions_repository_switches_without_a_remote(tmp_path: Path):
    repo = tmp_path / "mine"
    git("init", "--quiet", "--initial-branch=main", str(repo))
    (repo / "a.txt").write_text("a\n")
    git("add", "a.txt", cwd=repo)
    git("commit", "--quiet", "-m", "a", cwd=repo)
    # The local backend pushes the session's branch into the repository itself.
    git("branch", BRANCH, cwd=repo)
    git("commit", "--quiet", "--allow-empty", "-m", "later on main", cwd=repo)
    result = checkout(str(repo / ".git"), BRANCH, path=repo)
    assert (result.remote, result.switched) == (None, True)
    assert git("symbolic-ref", "--short", "HEAD", cwd=repo) == BRANCH
    assert "switch back before its next prompt" in str(result)


# --- it refuses, and nothing moves ----------------------------------------------------------------


def test_another_repository_is_refused_naming_both(tmp_path: Path, clone: Path):
    other = make_bare_repo(tmp_path, "other")
    before = _state(clone)
    refusal = _refused("other_repository", clone, repo=other)
    assert str(other) in refusal.message and str(clone) in refusal.message
    assert _state(clone) == before


def test_not_a_clone(tmp_path: Path, origin: Path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert "not inside a git work tree" in _refused("not_a_clone", plain, repo=origin).message


@pytest.mark.parametrize("staged", [False, True])
def test_an_edited_file_the_branch_changes_is_never_overwritten(clone: Path, origin: Path, staged: bool):
    (clone / "app.py").write_text("x = 'my work'\n")
    if staged:
        git("add", "app.py", cwd=clone)
    before = _state(clone)
    refusal = _refused("uncommitted_changes", clone, repo=origin)
    assert "app.py" in refusal.message and f"origin/{BRANCH}" in refusal.message
    assert (clone / "app.py").read_text() == "x = 'my work'\n"
    assert _state(clone) == before  # no local branch made, HEAD still main
    # The fetch happened: the user can look at it before deciding.
    assert git("rev-parse", f"refs/remotes/origin/{BRANCH}", cwd=clone)


def test_an_edited_file_the_branch_deletes_is_refused(clone: Path, origin: Path):
    (clone / "old.txt").write_text("edited\n")
    assert "old.txt" in _refused("uncommitted_changes", clone, repo=origin).message
    assert (clone / "old.txt").read_text() == "edited\n"


@pytest.mark.parametrize("ignored", [False, True])
def test_an_untracked_or_ignored_file_the_branch_adds_is_never_overwritten(clone: Path, origin: Path, ignored: bool):
    (clone / "new.txt").write_text("my own new.txt\n")
    if ignored:
        (clone / ".git" / "info" / "exclude").write_text("new.txt\n")
    before = _state(clone)
    assert "new.txt" in _refused("uncommitted_changes", clone, repo=origin).message
    assert (clone / "new.txt").read_text() == "my own new.txt\n"
    assert _state(clone) == before


def test_a_file_where_the_branch_puts_a_folder_is_refused(clone: Path, origin: Path):
    (clone / "docs").write_text("a file named docs\n")
    assert "docs" in _refused("uncommitted_changes", clone, repo=origin).message
    assert (clone / "docs").read_text() == "a file named docs\n"


def test_a_diverged_local_branch_is_refused(clone: Path, origin: Path):
    git("switch", "--quiet", "-c", BRANCH, cwd=clone)
    (clone / "mine.txt").write_text("my commit\n")
    git("add", "mine.txt", cwd=clone)
    git("commit", "--quiet", "-m", "my own work on the same name", cwd=clone)
    git("switch", "--quiet", "main", cwd=clone)
    before = _state(clone)
    refusal = _refused("diverged", clone, repo=origin)
    assert "merge or rebase it yourself" in refusal.message
    assert _state(clone) == before
    assert git("log", "-1", "--format=%s", BRANCH, cwd=clone) == "my own work on the same name"


def test_a_branch_the_repository_does_not_have(clone: Path, origin: Path):
    with pytest.raises(CheckoutRefused) as info:
        checkout(str(origin), "cloudws/nothing-here", path=clone)
    assert info.value.reason == "fetch_failed" and "cloudws/nothing-here" in info.value.message


@pytest.mark.parametrize("branch", ["-f", "--upload-pack=touch /tmp/pwned", "a..b", "a:b", "x.lock", "a b", "", "@"])
def test_a_branch_name_that_could_be_read_as_something_else_is_refused(clone: Path, origin: Path, branch: str):
    before = _state(clone)
    with pytest.raises(CheckoutRefused) as info:
        checkout(str(origin), branch, path=clone)
    assert info.value.reason == "bad_branch"
    assert _state(clone) == before


def test_valid_branch_agrees_with_git():
    names = ["cloudws/abc", "feature/x-1", "-f", "a..b", "a:b", "x.lock", "a/.hidden", "a b", "a~1", "a^", "a@{1}",
             "a//b", "a/", "ok.name", "a\\b", "trailing."]  # fmt: skip
    # ("@" alone is refused here too; check-ref-format --branch reads it as HEAD and answers its name.)
    for name in names:
        by_git = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True).returncode == 0
        assert valid_branch(name) == by_git, name


# --- the pure decisions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/Octo/App.git",
        "https://github.com/octo/app",
        "https://github.com/octo/app/",
        "https://x-access-token:secret@github.com:443/octo/app.git",
        "http://GitHub.com/octo/app.git/",
        "ssh://git@github.com/octo/app.git",
        "ssh://git@github.com:22/octo/app",
        "git@github.com:octo/app.git",
        "github.com:octo/app",
        "git://github.com/octo/app.git",
    ],
)
def test_one_repository_many_spellings(url: str):
    assert normalize_repo_url(url) == "github.com/octo/app"


def test_different_repositories_stay_different(tmp_path: Path):
    assert normalize_repo_url("https://github.com/octo/app") != normalize_repo_url("https://github.com/octo/app2")
    assert normalize_repo_url("https://github.com/octo/app") != normalize_repo_url("https://ghe.example/octo/app")
    assert normalize_repo_url("git@github.com:octo/app.git") != normalize_repo_url("git@github.com:other/app.git")
    (tmp_path / "r").mkdir()
    # Local spellings: relative to the clone, file://, trailing slash, a work tree and its .git.
    local = normalize_repo_url(str(tmp_path / "r"))
    assert normalize_repo_url("../r", relative_to=tmp_path / "clone") == local
    assert normalize_repo_url(f"file://{tmp_path}/r/") == local
    assert normalize_repo_url(str(tmp_path / "r" / ".git")) == local
    assert normalize_repo_url("./a:b", relative_to=tmp_path) == normalize_repo_url(str(tmp_path / "a:b"))


def test_choose_remote_prefers_origin_and_names_both_when_none_fits(tmp_path: Path):
    remotes = {"upstream": ["https://github.com/octo/app.git"], "origin": ["git@github.com:octo/app.git"],
               "fork": ["https://github.com/me/app.git"]}  # fmt: skip
    assert choose_remote("https://github.com/octo/app", remotes, tmp_path, tmp_path / ".git") == "origin"
    assert choose_remote("https://github.com/me/app", remotes, tmp_path, tmp_path / ".git") == "fork"
    assert choose_remote(str(tmp_path), remotes, tmp_path, tmp_path / ".git") is None
    with pytest.raises(CheckoutRefused) as info:
        choose_remote("https://github.com/someone/else", remotes, tmp_path, tmp_path / ".git")
    assert "https://github.com/someone/else" in info.value.message and "fork = https://github.com/me/app.git" in str(
        info.value
    )


def test_status_and_conflicts_parsing():
    status = b" M app.py\0?? new dir/file.txt\0R  renamed.py\0was.py\0A  added.py\0"
    assert parse_status(status) == ["app.py", "new dir/file.txt", "renamed.py", "was.py", "added.py"]
    touched = ["app.py", "was.py", "docs/a.md", "lib"]
    assert touched_conflicts(["app.py", "README.md", "docs", "lib/x.py", "was.py"], touched) == [
        "app.py", "docs", "lib/x.py", "was.py"]  # fmt: skip
    assert touched_conflicts(["doc", "app.pyc"], touched) == []
