"""The files a prompt changed, as its ``git`` event lists them: real commits in a real repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cloudws_sandbox import gitops
from cloudws_sandbox.protocol import MAX_GIT_EVENT_FILES, GitEvent, validate_event_body

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Seeder", "GIT_AUTHOR_EMAIL": "seed@example.invalid",
    "GIT_COMMITTER_NAME": "Seeder", "GIT_COMMITTER_EMAIL": "seed@example.invalid",
}  # fmt: skip


def run(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


def commit(work: Path, message: str = "change") -> str:
    run("add", "--all", cwd=work)
    run("commit", "--quiet", "--allow-empty", "-m", message, cwd=work)
    return run("rev-parse", "HEAD", cwd=work)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    run("init", "--quiet", "--initial-branch=main", str(path), cwd=tmp_path)
    return path


async def test_renames_deletions_binaries_and_counts_are_listed(work):
    (work / "story.txt").write_text("".join(f"line {i}\n" for i in range(20)))
    (work / "gone.txt").write_text("bye\n")
    (work / "keep.py").write_text("x = 1\n")
    (work / "logo.png").write_bytes(b"\x89PNG\x00\x01")
    before = commit(work)
    (work / "docs").mkdir()
    run("mv", "story.txt", "docs/story with space.txt", cwd=work)
    (work / "docs" / "story with space.txt").write_text("".join(f"line {i}\n" for i in range(20)) + "the end\n")
    (work / "gone.txt").unlink()
    (work / "keep.py").write_text("x = 2\ny = 3\n")
    (work / "logo.png").write_bytes(b"\x89PNG\x00\x02")
    (work / "new.md").write_text("# new\n")
    after = commit(work)

    files, total = await gitops.changed_files(str(work), before, after)

    by_path = {f["path"]: f for f in files}
    assert total == len(files) == 5
    assert by_path["docs/story with space.txt"] == {
        "path": "docs/story with space.txt", "old_path": "story.txt", "status": "renamed", "additions": 1, "deletions": 0,
    }  # fmt: skip
    assert by_path["gone.txt"] == {"path": "gone.txt", "status": "deleted", "additions": 0, "deletions": 1}
    assert by_path["keep.py"] == {"path": "keep.py", "status": "modified", "additions": 2, "deletions": 1}
    assert by_path["logo.png"] == {"path": "logo.png", "status": "modified", "additions": None, "deletions": None}
    assert by_path["new.md"] == {"path": "new.md", "status": "added", "additions": 1, "deletions": 0}
    # What the daemon logs from it is an event the protocol (and so the hub) accepts.
    validate_event_body(GitEvent("b", after, True, before=before, files=files, files_total=total).to_dict())


async def test_a_prompt_on_an_empty_repository_lists_its_files_from_nothing(work):
    (work / "first.txt").write_text("one\ntwo\n")
    after = commit(work)
    files, total = await gitops.changed_files(str(work), "", after)
    assert (files, total) == ([{"path": "first.txt", "status": "added", "additions": 2, "deletions": 0}], 1)


async def test_many_files_are_listed_up_to_the_limit_and_all_counted(work):
    before = commit(work, "empty")
    for i in range(MAX_GIT_EVENT_FILES + 25):
        (work / f"f{i:04}.txt").write_text(f"{i}\n")
    after = commit(work)
    files, total = await gitops.changed_files(str(work), before, after)
    assert total == MAX_GIT_EVENT_FILES + 25 and len(files) == MAX_GIT_EVENT_FILES
    assert files[0]["path"] == "f0000.txt"


async def test_no_change_lists_nothing(work):
    sha = commit(work)
    assert await gitops.changed_files(str(work), sha, sha) == ([], 0)


def test_odd_paths_survive_the_parse():
    # Tabs, a leading ':', newlines and non-UTF-8 bytes: -z output keeps them all apart.
    blob = "a" * 40
    out = (
        b":100644 100644 " + blob.encode() + b" " + blob.encode() + b" M\0:colon\tand tab\0"
        b":100644 100644 " + blob.encode() + b" " + blob.encode() + b" R090\0old\nname\0new\xffname\0"
        b"3\t1\t:colon\tand tab\0" b"0\t0\t\0old\nname\0new\xffname\0"
    )  # fmt: skip
    first, second = gitops.parse_raw_numstat(out)
    assert (first.path, first.status, first.additions, first.deletions) == (":colon\tand tab", "modified", 3, 1)
    assert (second.old_path, second.path, second.status) == ("old\nname", "new\ufffdname", "renamed")


async def test_a_path_longer_than_the_protocol_allows_is_counted_not_listed(work):
    before = commit(work, "empty")
    (work / "short.txt").write_text("ok\n")
    run("add", "short.txt", cwd=work)
    # No file system makes such a path, but a commit can name one: stage it without a file.
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=work, input="x\n", capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    long_path = "/".join(["d" * 200] * 25) + "/f.txt"
    run("update-index", "--add", "--cacheinfo", f"100644,{blob},{long_path}", cwd=work)
    run("commit", "--quiet", "-m", "long", cwd=work)
    after = run("rev-parse", "HEAD", cwd=work)
    files, total = await gitops.changed_files(str(work), before, after)
    assert [f["path"] for f in files] == ["short.txt"] and total == 2
    validate_event_body(GitEvent("b", after, True, before=before, files=files, files_total=total).to_dict())
