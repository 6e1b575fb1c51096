"""LocalBackend snapshots: what a copy keeps and leaves out, that it never follows the agent's links
out of the sandbox, and that a new sandbox starts from it (or says it is gone)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import git

from jupyter_cloudws.backends import local_snapshots
from jupyter_cloudws.backends.base import SandboxSpec, SnapshotGone
from jupyter_cloudws.backends.local import LocalBackend

SID = "5" * 32


def backend_for(tmp_path: Path) -> LocalBackend:
    return LocalBackend(root_dir=str(tmp_path / "data" / "sandboxes"))


def sandbox_left_by_an_agent(tmp_path: Path, backend: LocalBackend) -> tuple[str, Path]:
    """The folder of a sandbox as an agent leaves it (no daemon needed to copy it): a work tree
    with an ignored file, a home, the daemon's own files, and some traps."""
    sandbox_id = "local-55555555-0badcafe"
    box = Path(backend.root_dir) / sandbox_id / "box"
    repo = box / "repo"
    repo.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=cloudws/x", str(repo))
    (repo / ".gitignore").write_text("notes.txt\n")
    (repo / "notes.txt").write_text("ignored by git, kept by the snapshot\n")
    (box / "claude" / "projects").mkdir(parents=True)  # the conversation, with no data dir to keep it
    (box / "claude" / "projects" / "t.jsonl").write_text("{}\n")
    (box / "home" / ".cache").mkdir(parents=True)
    (box / "home" / ".cache" / "tool.db").write_bytes(b"\0" * 1000)
    (box / "events.jsonl").write_text('{"seq": 1, "type": "planted-marker"}\n')
    (box / "config.json").write_text("{}")
    secret = tmp_path / "host-secret"
    secret.write_text("the host's secret")
    os.symlink(secret, repo / "leak")  # copied as the link it is, never as what it points at
    os.mkfifo(repo / "pipe")  # reading it would block the copy for ever
    return sandbox_id, box


async def test_a_snapshot_keeps_the_work_tree_and_home_and_nothing_else(tmp_path: Path) -> None:
    backend = backend_for(tmp_path)
    sandbox_id, _ = sandbox_left_by_an_agent(tmp_path, backend)

    snapshot_id = await backend.snapshot(sandbox_id)

    copy = tmp_path / "data" / "snapshots" / snapshot_id
    assert sorted(p.name for p in copy.iterdir()) == ["claude", "home", "repo"], "no event log, config or socket"
    assert (copy / "repo" / "notes.txt").read_text() == "ignored by git, kept by the snapshot\n"
    assert (copy / "repo" / ".git" / "HEAD").read_text().strip() == "ref: refs/heads/cloudws/x"
    assert (copy / "home" / ".cache" / "tool.db").stat().st_size == 1000
    assert os.readlink(copy / "repo" / "leak") == str(tmp_path / "host-secret")
    assert not [p for p in (tmp_path / "data" / "snapshots").iterdir() if p.name != snapshot_id], "no partial left"


async def test_a_part_the_agent_swapped_for_a_link_is_not_followed(tmp_path: Path) -> None:
    backend = backend_for(tmp_path)
    sandbox_id, box = sandbox_left_by_an_agent(tmp_path, backend)
    outside = tmp_path / "host-home"
    (outside / ".ssh").mkdir(parents=True)
    (outside / ".ssh" / "id_ed25519").write_text("private key")
    for child in (box / "home").iterdir():
        child.rename(box / child.name)
    (box / "home").rmdir()
    os.symlink(outside, box / "home")

    snapshot_id = await backend.snapshot(sandbox_id)

    copy = tmp_path / "data" / "snapshots" / snapshot_id
    assert sorted(p.name for p in copy.iterdir()) == ["claude", "repo"]
    assert not list(copy.rglob("id_ed25519"))


@pytest.mark.parametrize("use_cp", [True, False], ids=["cp", "python"])
def test_both_copies_keep_links_as_links_and_never_read_a_fifo(tmp_path: Path, use_cp: bool) -> None:
    source = tmp_path / "tree"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "file").write_text("content")
    os.symlink("/etc/passwd", source / "sub" / "link")
    os.mkfifo(source / "pipe")

    local_snapshots.copy_tree(source, tmp_path / "copy", use_cp=use_cp)

    assert (tmp_path / "copy" / "sub" / "file").read_text() == "content"
    assert os.readlink(tmp_path / "copy" / "sub" / "link") == "/etc/passwd"


@pytest.mark.parametrize(
    ("kind", "conversation_kept"),
    [("snapshot", True), ("prebuild", False)],  # a repository image never carries a conversation
)
async def test_a_new_sandbox_starts_with_the_snapshot_in_place(tmp_path: Path, kind: str,
                                                               conversation_kept: bool) -> None:  # fmt: skip
    backend = backend_for(tmp_path)
    sandbox_id, _ = sandbox_left_by_an_agent(tmp_path, backend)
    snapshot_id = await backend.snapshot(sandbox_id)
    spec = SandboxSpec(session_id=SID, repo=str(tmp_path / "missing.git"), base_branch="main", branch="cloudws/x",
                       restore_from=snapshot_id, restore_kind=kind)  # fmt: skip

    restored_id = await backend.create(spec)
    try:
        box = tmp_path / "data" / "sandboxes" / restored_id / "box"
        assert (box / "repo" / "notes.txt").read_text() == "ignored by git, kept by the snapshot\n"
        assert (box / "home" / ".cache" / "tool.db").exists()
        assert (box / "claude" / "projects" / "t.jsonl").exists() is conversation_kept
        assert json.loads((box / "config.json").read_text())["restore_kind"] == kind, "the daemon only fetches"
        log = box / "events.jsonl"
        assert not log.exists() or "planted-marker" not in log.read_text(), "the new sandbox logs afresh"
    finally:
        await backend.terminate(restored_id)
    assert (tmp_path / "data" / "snapshots" / snapshot_id).is_dir(), "the snapshot stays for the next one"

    await backend.delete_snapshot(snapshot_id)
    assert not (tmp_path / "data" / "snapshots" / snapshot_id).exists()


@pytest.mark.parametrize(
    ("restore_from", "kind", "why"),
    [
        ("snap-" + "0" * 32, "snapshot", "is gone"),
        ("../sandboxes", "snapshot", "not a local snapshot id"),
        ("snap-" + "0" * 30 + "/..", "snapshot", "not a local snapshot id"),
        ("im-abc123", "snapshot", "not a local snapshot id"),
        ("snap-" + "0" * 32, "prebuild", "is gone"),
        ("snap-" + "0" * 32, "nightly", "cannot start from a 'nightly' image"),
    ],
)
async def test_a_missing_or_foreign_snapshot_is_gone_and_leaves_nothing(tmp_path: Path, restore_from, kind, why):
    backend = backend_for(tmp_path)
    spec = SandboxSpec(session_id=SID, repo=str(tmp_path / "missing.git"), base_branch="main", branch="cloudws/x",
                       restore_from=restore_from, restore_kind=kind)  # fmt: skip
    with pytest.raises(SnapshotGone, match=why):
        await backend.create(spec)
    sandboxes = tmp_path / "data" / "sandboxes"
    assert not sandboxes.exists() or not list(sandboxes.iterdir())


async def test_deleting_refuses_a_path_trick(tmp_path: Path) -> None:
    backend = backend_for(tmp_path)
    victim = tmp_path / "data" / "keep"
    victim.mkdir(parents=True)
    for bad in ("../keep", "snap-../../keep", "/tmp"):
        with pytest.raises(SnapshotGone):
            await backend.delete_snapshot(bad)
    assert victim.is_dir()
