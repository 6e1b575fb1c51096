"""Repository prebuilds in the hub, staged with the fake backend: a build follows its sandbox to
``ready``, snapshots it and ends it; one build per repository and branch; the new image replaces
(and deletes) the old one; sessions start from it, and fall back to a clone when it is gone."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from hub_fakes import ADA, WAIT_S, events_of, make_hub, running_on, send

from cloudws_sandbox.protocol import SandboxProgressEvent, SandboxStatusEvent
from jupyter_cloudws.hub import HubError, Requester, SessionHub
from jupyter_cloudws.prebuild import WARM_MIN_INTERVAL_S, parse_entry
from jupyter_cloudws.testing.fake_backend import FakeBackend, FakeSandbox, settle, until

REPO = "https://example.test/project.git"
BOB = Requester("bob")


@pytest.fixture
def snapshotting(fake_backend: FakeBackend) -> FakeBackend:
    fake_backend.supports_snapshot = True  # type: ignore[misc]
    return fake_backend


async def built(hub: SessionHub, backend: FakeBackend, count: int = 1, *, setup: str = "done") -> dict[str, Any]:
    """Let the ``count``-th sandbox (a prebuild's) clone, run its setup and report ready; the
    build's final record."""
    sandbox = await asyncio.wait_for(backend.wait_for_sandbox(count), WAIT_S)
    report(sandbox, setup=setup)
    build_id = hub.prebuilds._build_ids[(sandbox.spec.repo, sandbox.spec.base_branch)]
    return await asyncio.wait_for(hub.prebuilds.wait(build_id), WAIT_S)


def report(sandbox: FakeSandbox, *, setup: str = "done") -> None:
    sandbox.emit(SandboxProgressEvent("clone", "running"))
    sandbox.emit(SandboxProgressEvent("clone", "done", elapsed_ms=120))
    sandbox.emit(SandboxProgressEvent("setup", "running"))
    output = "npm ERR! 404 left-pad" if setup == "failed" else "installed 3 packages"
    sandbox.emit(SandboxProgressEvent("setup", setup, elapsed_ms=900, detail=f"exit code {int(setup == 'failed')}",
                                      output=output))  # fmt: skip
    sandbox.ready()


async def test_a_prebuild_clones_in_a_prebuild_sandbox_snapshots_it_and_ends_it(fake_hub, snapshotting):
    row, started = fake_hub.prebuilds.request(REPO, "main", ADA)
    assert started and row["status"] == "building" and row["requested_by"] == "ada"

    done = await built(fake_hub, snapshotting)

    (sandbox,) = snapshotting.created
    assert sandbox.spec.prebuild is True
    assert (sandbox.spec.repo, sandbox.spec.base_branch) == (REPO, "main")
    assert done["status"] == "ready", done
    assert snapshotting.snapshots[done["image_id"]] == sandbox.id
    assert snapshotting.terminated == [sandbox.id]
    assert [(s["step"], s["state"]) for s in done["steps"]] == [
        ("start", "running"), ("start", "done"), ("clone", "running"), ("clone", "done"), ("setup", "running"),
        ("setup", "done"), ("image", "running"), ("image", "done"),
    ]  # fmt: skip
    assert "installed 3 packages" in done["steps"][5]["output"]
    assert done["built_at"] and done["duration_s"] is not None and done["sandbox_id"] is None
    assert fake_hub.prebuilt_image(REPO, "main") == done["image_id"]
    assert fake_hub.prebuilt_image(REPO, "dev") is None, "another branch has no image"


async def test_a_second_request_while_building_gets_the_running_build(fake_hub, snapshotting):
    first, started = fake_hub.prebuilds.request(REPO, "main", ADA)
    again, started_again = fake_hub.prebuilds.request(REPO, "main", BOB)
    assert started and not started_again
    assert again["id"] == first["id"]
    other_branch, started_other = fake_hub.prebuilds.request(REPO, "dev", ADA)
    assert started_other and other_branch["id"] != first["id"]
    await settle()
    assert len(snapshotting.created) == 2, "one sandbox per repository and branch"
    assert fake_hub.prebuilds.get(first["id"], BOB)["id"] == first["id"], "who asked may watch it"

    await built(fake_hub, snapshotting, 1)
    then, started_then = fake_hub.prebuilds.request(REPO, "main", ADA)
    assert started_then and then["id"] != first["id"], "once it ended, a new build may start"


@pytest.mark.parametrize(
    ("repo", "branch", "code"),
    [
        ("--upload-pack=touch /tmp/pwned", "main", "bad_repo"),
        ("https://user:secret@example.test/x.git", "main", "credentials_in_url"),
        ("ext::sh -c touch% /tmp/pwned", "main", "bad_repo"),
        ("/etc", "main", "repo_outside_roots"),
        (REPO, "--force", "bad_branch"),
        (REPO, "../../etc/passwd", "bad_branch"),
        (REPO, "a..b", "bad_branch"),
        (REPO, "x" * 1000, "bad_request"),
        (REPO, ["main"], "bad_request"),
        ({"url": REPO}, "main", "bad_request"),
    ],
)
async def test_hostile_repositories_and_branches_are_refused_and_nothing_starts(fake_hub, snapshotting, repo, branch,
                                                                                code):  # fmt: skip
    with pytest.raises(HubError) as refused:
        fake_hub.prebuilds.request(repo, branch, ADA)
    assert (refused.value.status, refused.value.code) == (400, code), refused.value.message
    with pytest.raises(HubError) as warm_refused:
        fake_hub.prebuilds.warm(repo, branch, ADA)
    assert warm_refused.value.code == code
    await settle()
    assert snapshotting.created == [] and fake_hub.store.list_repo_images() == []


async def test_a_backend_that_cannot_snapshot_refuses_to_prebuild_with_a_clear_error(fake_hub, fake_backend):
    with pytest.raises(HubError) as refused:
        fake_hub.prebuilds.request(REPO, "main", ADA)
    assert (refused.value.status, refused.value.code) == (501, "prebuild_unsupported")
    assert "the fake backend cannot snapshot sandboxes" in refused.value.message
    assert fake_hub.prebuilds.warm(REPO, "main", ADA) == {"started": False, "status": "unsupported", "id": None}
    assert fake_backend.created == []


async def test_a_new_image_replaces_the_old_one_which_is_deleted(fake_hub, snapshotting):
    fake_hub.prebuilds.request(REPO, "main", ADA)
    old = await built(fake_hub, snapshotting, 1)
    fake_hub.prebuilds.request(REPO, "main", ADA)
    new = await built(fake_hub, snapshotting, 2)

    assert new["image_id"] != old["image_id"]
    await until(lambda: snapshotting.deleted_snapshots, WAIT_S)
    assert snapshotting.deleted_snapshots == [old["image_id"]]
    assert fake_hub.prebuilt_image(REPO, "main") == new["image_id"]
    assert [r["id"] for r in fake_hub.prebuilds.list(ADA)] == [new["id"]]


async def test_a_failing_setup_script_makes_no_image_and_keeps_the_one_in_use(fake_hub, snapshotting):
    fake_hub.prebuilds.request(REPO, "main", ADA)
    good = await built(fake_hub, snapshotting, 1)
    fake_hub.prebuilds.request(REPO, "main", ADA)
    bad = await built(fake_hub, snapshotting, 2, setup="failed")

    assert bad["status"] == "failed" and bad["image_id"] is None
    assert "the setup script failed (exit code 1)" in bad["detail"] and "npm ERR! 404 left-pad" in bad["detail"]
    assert ("snapshot", snapshotting.created[1].id) not in snapshotting.calls
    assert snapshotting.terminated == [snapshotting.created[0].id, snapshotting.created[1].id]
    await settle()
    assert snapshotting.deleted_snapshots == []
    assert fake_hub.prebuilt_image(REPO, "main") == good["image_id"]
    assert {r["status"] for r in fake_hub.prebuilds.list(ADA)} == {"ready", "failed"}


async def test_a_sandbox_that_fails_or_dies_fails_the_build_and_is_ended(fake_hub, snapshotting):
    first, _ = fake_hub.prebuilds.request(REPO, "main", ADA)
    sandbox = await snapshotting.wait_for_sandbox(1)
    sandbox.emit(SandboxStatusEvent("failed", "clone failed: repository not found"))
    done = await asyncio.wait_for(fake_hub.prebuilds.wait(first["id"]), WAIT_S)
    assert done["status"] == "failed" and "clone failed: repository not found" in done["detail"]
    assert snapshotting.terminated == [sandbox.id]

    second, _ = fake_hub.prebuilds.request(REPO, "main", ADA)
    sandbox = await snapshotting.wait_for_sandbox(2)
    await until(lambda: sandbox.attached_streams, WAIT_S)
    sandbox.die()
    done = await asyncio.wait_for(fake_hub.prebuilds.wait(second["id"]), WAIT_S)
    assert done["status"] == "failed" and "ended before it was ready" in done["detail"]
    assert fake_hub.prebuilt_image(REPO, "main") is None


async def test_a_build_that_cannot_start_a_sandbox_fails_with_the_reason(fake_hub, snapshotting):
    snapshotting.create_error = RuntimeError("no capacity")
    row, _ = fake_hub.prebuilds.request(REPO, "main", ADA)
    done = await asyncio.wait_for(fake_hub.prebuilds.wait(row["id"]), WAIT_S)
    assert done["status"] == "failed" and done["detail"] == "could not start a sandbox: no capacity"


async def test_a_build_past_its_timeout_fails_and_its_sandbox_is_ended(memory_store, snapshotting):
    hub = make_hub(memory_store, snapshotting, prebuild_timeout_s=0.05)
    try:
        row, _ = hub.prebuilds.request(REPO, "main", ADA)
        sandbox = await snapshotting.wait_for_sandbox(1)  # it never reports ready
        done = await asyncio.wait_for(hub.prebuilds.wait(row["id"]), WAIT_S)
        assert done["status"] == "failed" and "longer than 0.05 s" in done["detail"]
        assert snapshotting.terminated == [sandbox.id]
    finally:
        await hub.close()


async def test_a_session_on_a_prebuilt_repository_starts_from_its_image(fake_hub, snapshotting):
    fake_hub.prebuilds.request(REPO, "main", ADA)
    image = (await built(fake_hub, snapshotting))["image_id"]
    sid = fake_hub.create_session({"repo": REPO, "base_branch": "main"}, owner="ada")["id"]
    send(fake_hub, sid, "hello")

    sandbox = await running_on(snapshotting, count=2)
    assert (sandbox.spec.restore_from, sandbox.spec.restore_kind) == (image, "prebuild")
    assert sandbox.spec.prebuild is False, "a session's sandbox runs the agent"
    other = fake_hub.create_session({"repo": REPO}, owner="ada")["id"]
    send(fake_hub, other, "on the default branch")
    assert (await running_on(snapshotting, count=3)).spec.restore_from is None, "main's image is not the default's"


async def test_a_gone_image_falls_back_to_a_clone_and_is_no_longer_handed_out(fake_hub, snapshotting):
    fake_hub.prebuilds.request(REPO, "main", ADA)
    done = await built(fake_hub, snapshotting)
    del snapshotting.snapshots[done["image_id"]]  # expired on the backend's side
    sid = fake_hub.create_session({"repo": REPO, "base_branch": "main"}, owner="ada")["id"]
    send(fake_hub, sid, "hello")

    sandbox = await running_on(snapshotting, count=2)
    assert sandbox.spec.restore_from is None
    (note,) = events_of(fake_hub, sid, "error")
    assert note["code"] == "prebuild_unavailable" and done["image_id"] in note["message"]
    assert fake_hub.prebuilt_image(REPO, "main") is None
    row = fake_hub.store.get_repo_image(done["id"])
    assert row["status"] == "failed" and row["detail"].startswith("the image is gone")


async def test_builds_are_shown_to_who_asked_admins_and_for_configured_repositories_everyone(fake_hub, snapshotting):
    mine, _ = fake_hub.prebuilds.request(REPO, "main", ADA)
    configured, _ = fake_hub.prebuilds.request(REPO, "dev", None)
    assert {r["id"] for r in fake_hub.prebuilds.list(ADA)} == {mine["id"], configured["id"]}
    assert {r["id"] for r in fake_hub.prebuilds.list(BOB)} == {configured["id"]}
    assert {r["id"] for r in fake_hub.prebuilds.list(Requester("root", is_admin=True))} == {mine["id"], configured["id"]}
    with pytest.raises(HubError) as hidden:
        fake_hub.prebuilds.get(mine["id"], BOB)
    assert hidden.value.code == "unknown_prebuild"


async def test_a_build_left_running_by_a_stopped_server_is_failed_and_its_sandbox_ended(memory_store, snapshotting):
    first = make_hub(memory_store, snapshotting)
    row, _ = first.prebuilds.request(REPO, "main", ADA)
    sandbox = await snapshotting.wait_for_sandbox(1)
    await until(lambda: memory_store.get_repo_image(row["id"])["sandbox_id"], WAIT_S)
    first.prebuilds._tasks.clear()  # the server died: nothing of it runs on
    second = make_hub(memory_store, snapshotting)
    try:
        await second.start()
        assert memory_store.get_repo_image(row["id"])["status"] == "failed"
        await until(lambda: sandbox.id in snapshotting.terminated, WAIT_S)
    finally:
        await second.close()


class TestWarm:
    async def test_choosing_a_repository_builds_its_image_once(self, fake_hub, snapshotting):
        now = [100.0]
        fake_hub.prebuilds.clock = lambda: now[0]
        warmed = fake_hub.prebuilds.warm(REPO, "", ADA)
        assert warmed["started"] is True and warmed["status"] == "building"
        with pytest.raises(HubError) as limited:
            fake_hub.prebuilds.warm(REPO, "", ADA)
        assert (limited.value.status, limited.value.code) == (429, "rate_limited")
        assert fake_hub.prebuilds.warm(REPO, "", BOB) == {"started": False, "status": "building", "id": None}
        await built(fake_hub, snapshotting)
        now[0] += WARM_MIN_INTERVAL_S
        assert fake_hub.prebuilds.warm(REPO, "", ADA) == {"started": False, "status": "ready", "id": None}
        assert len(snapshotting.created) == 1

    async def test_a_build_that_failed_lately_is_not_retried_by_warm_ups(self, fake_hub, snapshotting):
        fake_hub.prebuilds.warm(REPO, "main", ADA)
        await built(fake_hub, snapshotting, setup="failed")
        assert fake_hub.prebuilds.warm(REPO, "main", BOB) == {"started": False, "status": "failed", "id": None}
        assert len(snapshotting.created) == 1


class TestKeepFresh:
    @pytest.mark.parametrize(
        ("entry", "parsed"),
        [
            ("https://example.test/o/r.git", ("https://example.test/o/r.git", "")),
            ("https://example.test/o/r.git@release/2.0", ("https://example.test/o/r.git", "release/2.0")),
            ("git@example.test:o/r.git", ("git@example.test:o/r.git", "")),
            ("git@example.test:o/r.git@dev", ("git@example.test:o/r.git", "dev")),
            ("ssh://git@example.test/o/r", ("ssh://git@example.test/o/r", "")),
            ("ssh://git@example.test/o/r@dev", ("ssh://git@example.test/o/r", "dev")),
            ("/srv/repos/app@main", ("/srv/repos/app", "main")),
            (" /srv/repos/app ", ("/srv/repos/app", "")),
        ],
    )
    def test_an_entry_names_a_repository_and_maybe_a_branch(self, entry, parsed):
        assert parse_entry(entry) == parsed

    async def test_configured_repositories_are_built_and_a_bad_entry_is_logged(self, fake_hub, snapshotting, caplog):
        caplog.set_level(logging.ERROR, "jupyter_cloudws.prebuild")
        task = asyncio.get_running_loop().create_task(
            fake_hub.prebuilds.keep_fresh(["--upload-pack=x", f"{REPO}@main", f"{REPO}@dev"], 0)
        )
        await built(fake_hub, snapshotting, 1)
        await built(fake_hub, snapshotting, 2)
        await asyncio.wait_for(task, WAIT_S)
        assert fake_hub.prebuilt_image(REPO, "main") and fake_hub.prebuilt_image(REPO, "dev")
        assert all(r["requested_by"] is None for r in fake_hub.store.list_repo_images())
        assert "'--upload-pack=x' refused" in caplog.text

    async def test_a_backend_without_snapshots_builds_nothing(self, fake_hub, fake_backend, caplog):
        await asyncio.wait_for(fake_hub.prebuilds.keep_fresh([REPO], 0), WAIT_S)
        assert fake_backend.created == [] and "cannot prebuild repositories" in caplog.text


async def test_closing_the_hub_mid_build_ends_its_sandbox_and_fails_the_build(memory_store, snapshotting):
    hub = make_hub(memory_store, snapshotting)
    row, _ = hub.prebuilds.request(REPO, "main", ADA)
    sandbox = await snapshotting.wait_for_sandbox(1)
    await until(lambda: sandbox.attached_streams, WAIT_S)
    await asyncio.wait_for(hub.close(), WAIT_S)
    assert snapshotting.terminated == [sandbox.id]
    done = memory_store.get_repo_image(row["id"])
    assert (done["status"], done["detail"], done["sandbox_id"]) == ("failed", "the server stopped during the build", None)


async def test_a_prebuild_sandbox_never_gets_the_agents_secrets(memory_store, snapshotting):
    """Its disk becomes an image every session starts from: a setup script that wrote the
    environment down would bake the key into it."""
    hub = make_hub(memory_store, snapshotting, agent_env={"ANTHROPIC_API_KEY": "sk-ant-secret", "TZ": "UTC"},
                   secret_names=("ANTHROPIC_API_KEY",))  # fmt: skip
    try:
        hub.prebuilds.request(REPO, "main", ADA)
        sandbox = await snapshotting.wait_for_sandbox(1)
        assert "ANTHROPIC_API_KEY" not in sandbox.spec.env
        assert sandbox.spec.env.get("TZ") == "UTC", "what is not secret still goes in"
    finally:
        await hub.close()
