"""A local sandbox left by an earlier server, that no session claims, is found as an orphan."""

from __future__ import annotations

from pathlib import Path

from jupyter_cloudws.backends.base import SandboxSpec
from jupyter_cloudws.backends.local import LocalBackend


async def test_a_restarted_server_finds_the_sandboxes_no_session_claims(tmp_path: Path) -> None:
    root = tmp_path / "sandboxes"
    first = LocalBackend(root_dir=str(root))
    spec = SandboxSpec(session_id="s" * 32, repo=str(tmp_path / "missing.git"), base_branch="", branch="cloudws/x")
    claimed_id = await first.create(spec)
    orphan_id = await first.create(spec)
    try:
        assert await first.orphans(set()) == [], "sandboxes this server started are never orphans"
        after_restart = LocalBackend(root_dir=str(root))
        assert await after_restart.orphans({claimed_id}) == [orphan_id]
        await after_restart.terminate(orphan_id)
        assert not (root / orphan_id).exists()
        assert await after_restart.orphans({claimed_id}) == []
    finally:
        for sandbox_id in (claimed_id, orphan_id):
            await first.terminate(sandbox_id)


async def test_no_sandbox_folder_yet_means_no_orphans(tmp_path: Path) -> None:
    assert await LocalBackend(root_dir=str(tmp_path / "never-made")).orphans(set()) == []


async def test_a_sandbox_still_being_started_is_not_an_orphan(tmp_path: Path, monkeypatch) -> None:
    """The sweep at server start runs beside spawns: one whose folder exists but whose daemon is
    not started yet (a slow restore) must not be ended under it."""
    import asyncio

    backend = LocalBackend(root_dir=str(tmp_path / "sandboxes"))
    restoring, release = asyncio.Event(), asyncio.Event()

    async def slow_restore(snapshot, host, spec):
        restoring.set()
        await release.wait()

    monkeypatch.setattr(backend, "_restore_source", lambda spec: tmp_path / "snapshot")
    monkeypatch.setattr(backend, "_restore", slow_restore)
    spec = SandboxSpec(session_id="s" * 32, repo=str(tmp_path / "missing.git"), base_branch="", branch="cloudws/x")
    creating = asyncio.ensure_future(backend.create(spec))
    await restoring.wait()
    assert await backend.orphans(set()) == []
    release.set()
    await backend.terminate(await creating)
