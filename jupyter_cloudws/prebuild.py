"""Prebuilt repository images: a repository cloned at a branch with its setup script run, kept
as a snapshot so that new sessions on it start from there and only fetch
(``jupyter cloudws prebuild``, ``c.CloudWorkspaces.prebuild_repos``, the new-session form's warm-up).

A build starts a sandbox whose spec says ``prebuild``: the daemon clones, runs
``.cloudws/setup.sh`` and reports ``ready`` without starting the agent. The hub follows its steps
over the bridge, snapshots the sandbox, ends it, and records the image in the ``repo_images``
table, deleting the image it replaces. One build per (repository, branch) runs at a time. A build
whose setup script fails stores no image: the one before it (if any) stays in use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backends.base import SandboxSpec
from .bridge import BridgeClient
from .hub import HubError, Requester, protocol_error
from .spawning import ProgressReporter
from cloudws_sandbox.protocol import ProtocolError, bridge_attach, check_branch

if TYPE_CHECKING:
    from .hub import SessionHub

log = logging.getLogger("jupyter_cloudws.prebuild")

MAX_STEPS = 100  # progress steps kept per build
MAX_OUTPUT_CHARS = 2000  # of a step's output (the setup script's tail) kept in a build's record
WARM_MIN_INTERVAL_S = 30.0  # between warm-ups of one repository and branch by one user
WARM_RETRY_FAILED_AFTER_S = 3600.0  # a warm-up does not retry a build that failed more recently
TERMINATE_TIMEOUT_S = 30.0
UNSUPPORTED = "the {name} backend cannot snapshot sandboxes, so it cannot prebuild repositories"


class BuildFailed(Exception):
    """The build ran but produced no image; the message says why, for people."""


def parse_entry(entry: str) -> tuple[str, str]:
    """``REPO`` or ``REPO@BRANCH`` (an item of ``prebuild_repos``) as (repo, branch); "" is the
    default branch. The branch follows the last ``@`` only when what comes before it is a whole
    repository: ``git@host:o/r`` names none, ``git@host:o/r@dev`` names ``dev``."""
    head, sep, tail = entry.strip().rpartition("@")
    if sep and tail and _is_whole_repo(head):
        return head, tail
    return entry.strip(), ""


def _is_whole_repo(text: str) -> bool:
    if "://" in text:
        return "/" in text.split("://", 1)[1]  # a host and a path, not ssh://user alone
    return text.startswith(("/", "~")) or ":" in text  # a local path, or user@host:path


class _Steps:
    """A build's progress as people see it (``GET prebuilds/{id}``), stored as it happens."""

    def __init__(self, prebuilds: Prebuilds, build_id: str) -> None:
        self.prebuilds = prebuilds
        self.build_id = build_id
        self.items: list[dict[str, Any]] = []
        self.count = 0  # steps reported so far: each item's ``n``, so a follower that was shown
        # the first N knows which are new once older ones have been dropped
        # The steps the hub or the backend's ``create`` took (the backend's ``progress``), timed
        # and redacted as a session's spawn does.
        self.hub_step = ProgressReporter(lambda body: self.add(body.to_dict()), prebuilds.hub.redactor.text)

    def add(self, event: dict[str, Any]) -> None:
        item = {k: event.get(k, "") for k in ("step", "state", "elapsed_ms", "detail", "output")}
        item["output"] = str(item["output"] or "")[-MAX_OUTPUT_CHARS:]
        self.count += 1
        item["n"] = self.count
        self.items = [*self.items, item][-MAX_STEPS:]
        self.prebuilds.store.update_repo_image(self.build_id, steps=self.items)

    def failed(self, step: str) -> dict[str, Any] | None:
        """The last report of ``step``, when it failed."""
        reports = [i for i in self.items if i["step"] == step]
        return reports[-1] if reports and reports[-1]["state"] == "failed" else None


class Prebuilds:
    """The hub's repository images: builds them, hands out the ready one, replaces old ones."""

    def __init__(self, hub: SessionHub, clock: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.store = hub.store
        self.clock = clock
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._build_ids: dict[tuple[str, str], str] = {}
        self._watchers: dict[str, set[str]] = {}  # build id -> users who asked for it while it ran
        self._warmed_s: dict[tuple[str, str, str], float] = {}  # (user, repo, branch) -> last warm-up
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def backend_name(self) -> str:
        return self.hub.backend.name

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> None:
        """Builds a previous server left unfinished failed with it; their sandboxes are ended."""
        for row in self.store.list_repo_images(backend=self.backend_name, status="building"):
            self.store.update_repo_image(row["id"], status="failed", detail="the server stopped during the build",
                                         sandbox_id=None)  # fmt: skip
            if row["sandbox_id"]:
                self.spawn(self._terminate(row["sandbox_id"]))

    async def close(self) -> None:
        tasks = [*self._tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` until it ends or the hub closes."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- queries -----------------------------------------------------------------------------

    def ready_image(self, repo: str, branch: str) -> str | None:
        ready = self.store.list_repo_images(backend=self.backend_name, repo=repo, branch=branch, status="ready")
        return ready[0]["image_id"] if ready else None

    def image_gone(self, image_id: str, reason: str) -> None:
        """A session found the image missing or expired: it is no longer handed out."""
        for row in self.store.list_repo_images(backend=self.backend_name, status="ready"):
            if row["image_id"] == image_id:
                log.warning("prebuilt image %s of %s@%s is gone: %s", image_id, row["repo"], row["branch"], reason)
                self.store.update_repo_image(row["id"], status="failed", detail=f"the image is gone: {reason}"[:2000])

    def visible(self, row: dict[str, Any], who: Requester) -> bool:
        """Builds are shown to admins, to who asked for them, and (those of ``prebuild_repos``,
        asked for by nobody) to everyone: another user's repositories stay theirs."""
        return (who.is_admin or row["requested_by"] in (None, who.username)
                or who.username in self._watchers.get(row["id"], ()))  # fmt: skip

    def get(self, build_id: str, who: Requester) -> dict[str, Any]:
        row = self.store.get_repo_image(build_id)
        if row is None or not self.visible(row, who):
            raise HubError(404, "unknown_prebuild", f"no prebuild {build_id!r}")
        return row

    def list(self, who: Requester) -> list[dict[str, Any]]:
        return [r for r in self.store.list_repo_images(backend=self.backend_name) if self.visible(r, who)]

    # -- builds ------------------------------------------------------------------------------

    def check(self, repo: Any, branch: Any) -> tuple[str, str]:
        """The repository and branch, checked exactly as a new session's are."""
        repo = self.hub.check_repo(repo)
        try:
            branch = check_branch(branch, "branch")
        except ProtocolError as exc:
            raise protocol_error(exc) from None
        if not self.hub.backend.supports_snapshot:
            raise HubError(501, "prebuild_unsupported", UNSUPPORTED.format(name=self.backend_name) +
                           "; sessions on it clone the repository and run its setup script themselves")  # fmt: skip
        return repo, branch

    def request(self, repo: Any, branch: Any, who: Requester | None) -> tuple[dict[str, Any], bool]:
        """Start a build of ``repo`` at ``branch`` (``who`` None: the server's ``prebuild_repos``);
        return its record and whether it started now. A build of the same repository and branch
        that is already running is returned instead of starting a second one."""
        repo, branch = self.check(repo, branch)
        key = (repo, branch)
        task = self._tasks.get(key)
        if task is not None and not task.done():
            build_id = self._build_ids[key]
            if who is not None:
                self._watchers.setdefault(build_id, set()).add(who.username)
            return self.store.get_repo_image(build_id), False  # type: ignore[return-value]
        row = self.store.create_repo_image(repo=repo, branch=branch, backend=self.backend_name,
                                           requested_by=who.username if who is not None else None)  # fmt: skip
        self._build_ids[key] = row["id"]
        self._tasks[key] = asyncio.get_running_loop().create_task(self._build(row))
        return row, True

    async def wait(self, build_id: str) -> dict[str, Any]:
        """The build's record once it has ended (for tests and the keep-fresh loop)."""
        for key, bid in list(self._build_ids.items()):
            task = self._tasks.get(key)
            if bid == build_id and task is not None:
                await asyncio.wait({task})  # never cancels the build when the waiter is cancelled
        return self.store.get_repo_image(build_id)  # type: ignore[return-value]

    async def _build(self, row: dict[str, Any]) -> None:
        build_id = row["id"]
        steps = _Steps(self, build_id)
        started_s = time.monotonic()
        box: dict[str, str] = {}  # the sandbox, once there is one, for the cleanup below
        try:
            image_id = await asyncio.wait_for(self._make_image(row, steps, box), self.hub.settings.prebuild_timeout_s)
        except asyncio.CancelledError:
            self._fail(build_id, "the server stopped during the build")
            raise
        except asyncio.TimeoutError:
            self._fail(build_id, f"the build took longer than {self.hub.settings.prebuild_timeout_s:g} s "
                                 "(c.CloudWorkspaces.prebuild_timeout_s)")  # fmt: skip
        except BuildFailed as exc:
            self._fail(build_id, str(exc))
        except Exception as exc:  # a backend's error: the build fails, the hub carries on
            log.exception("prebuild %s of %s@%s failed", build_id, row["repo"], row["branch"])
            self._fail(build_id, f"{type(exc).__name__}: {exc}")
        else:
            self._succeed(row, image_id, time.monotonic() - started_s, steps)
        finally:
            if "sandbox_id" in box:
                await self._terminate(box["sandbox_id"])
                self.store.update_repo_image(build_id, sandbox_id=None)
            self._forget_older(row, keep=build_id)

    async def _make_image(self, row: dict[str, Any], steps: _Steps, box: dict[str, str]) -> str:
        backend = self.hub.backend
        sweep = getattr(self.hub, "_orphan_sweep", None)
        if sweep is not None:
            # The sweep at start ends sandboxes no session claims: this one must not be among them.
            await asyncio.wait({sweep})
        spec = SandboxSpec(
            session_id=f"prebuild-{row['id']}", repo=row["repo"], base_branch=row["branch"],
            branch=f"cloudws/prebuild-{row['id'][:8]}", env=self.hub.sandbox_env(secrets=False),
            secret_names=self.hub.settings.secret_names, prebuild=True,
            setup_timeout_s=self.hub.settings.setup_timeout_s,
            git_credentials=self.hub.github.credential_for(row["repo"]) is not None,
        )  # fmt: skip
        steps.hub_step("start", "running", f"a {backend.name} sandbox")
        try:
            sandbox_id = await backend.create(spec, progress=steps.hub_step)
        except Exception as exc:
            steps.hub_step("start", "failed", str(exc))
            raise BuildFailed(f"could not start a sandbox: {exc}") from exc
        box["sandbox_id"] = sandbox_id
        self.store.update_repo_image(row["id"], sandbox_id=sandbox_id)
        steps.hub_step("start", "done", sandbox_id)
        await self._follow(sandbox_id, row["repo"], steps)
        setup = steps.failed("setup")
        if setup is not None:
            tail = f"\n{setup['output']}" if setup["output"] else ""
            raise BuildFailed(f"the setup script failed ({setup['detail'] or 'no detail'}); no image was made, "
                              f"sessions clone and run it themselves{tail}")  # fmt: skip
        steps.hub_step("image", "running", "snapshotting the sandbox")
        image_id = await backend.snapshot(sandbox_id)
        steps.hub_step("image", "done", image_id)
        return image_id

    async def _follow(self, sandbox_id: str, repo: str, steps: _Steps) -> None:
        """Read the sandbox's events until it reports ``ready``; raise if it fails or ends."""
        backend = self.hub.backend
        bridge = BridgeClient(await backend.connect(sandbox_id), sandbox_id)
        try:
            await bridge.send(bridge_attach(0))
            await bridge.send_credential(self.hub.github.credential_for(repo))
            async for frame in bridge.frames():
                event = frame.get("event") if frame["kind"] == "event" else None
                if event is None:
                    continue
                if event["type"] == "sandbox_progress":
                    steps.add(event)
                elif event["type"] == "sandbox_status" and event["status"] == "ready":
                    return
                elif event["type"] == "sandbox_status" and event["status"] in ("failed", "stopped"):
                    raise BuildFailed(f"the sandbox {event['status']}: {event.get('detail') or 'no detail'}")
        finally:
            await bridge.close()
        raise BuildFailed(f"the sandbox ended before it was ready: {await backend.exit_reason(sandbox_id)}")

    def _fail(self, build_id: str, detail: str) -> None:
        log.warning("prebuild %s failed: %s", build_id, detail)
        self.store.update_repo_image(build_id, status="failed", detail=self.hub.redactor.text(detail)[:4000])

    def _succeed(self, row: dict[str, Any], image_id: str, duration_s: float, steps: _Steps) -> None:
        setup = [i for i in steps.items if i["step"] == "setup"]
        detail = f"setup: {setup[-1]['detail'] or setup[-1]['state']}" if setup else "no setup script"
        self.store.update_repo_image(row["id"], status="ready", image_id=image_id, built_at=time.time(),
                                     duration_s=round(duration_s, 3), detail=detail)  # fmt: skip
        log.info("prebuilt %s@%s as image %s in %.1f s", row["repo"], row["branch"] or "(default)", image_id,
                 duration_s)  # fmt: skip

    def _forget_older(self, row: dict[str, Any], keep: str) -> None:
        """After a build ends: the newest outcome per repository and branch is kept, and the
        ready image it replaces is deleted (a failed build replaces no image)."""
        rows = self.store.list_repo_images(backend=self.backend_name, repo=row["repo"], branch=row["branch"])
        this = next((r for r in rows if r["id"] == keep), None)
        for other in rows:
            if other["id"] == keep or other["status"] == "building":
                continue
            if other["status"] == "ready" and (this is None or this["status"] != "ready"):
                continue  # the image in use stays until a better one is ready
            self.store.delete_repo_image(other["id"])
            self._watchers.pop(other["id"], None)
            if other["status"] == "ready" and other["image_id"]:
                self.spawn(self._delete_image(other["image_id"]))

    async def _delete_image(self, image_id: str) -> None:
        try:
            await self.hub.backend.delete_snapshot(image_id)
        except Exception:
            log.exception("could not delete the replaced prebuilt image %s", image_id)

    async def _terminate(self, sandbox_id: str) -> None:
        try:
            await asyncio.wait_for(self.hub.backend.terminate(sandbox_id), TERMINATE_TIMEOUT_S)
        except Exception:
            log.exception("could not end prebuild sandbox %s", sandbox_id)

    # -- warm-up and keep-fresh --------------------------------------------------------------

    def warm(self, repo: Any, branch: Any, who: Requester) -> dict[str, Any]:
        """The new-session form named a repository: build its image now unless one is ready,
        building, or failed lately, so the session created a moment later starts from it."""
        repo = self.hub.check_repo(repo)
        try:
            branch = check_branch(branch)
        except ProtocolError as exc:
            raise protocol_error(exc) from None
        if not self.hub.backend.supports_snapshot:
            return {"started": False, "status": "unsupported", "id": None}
        now_s = self.clock()
        key = (who.username, repo, branch)
        last_s = self._warmed_s.get(key)
        if last_s is not None and now_s - last_s < WARM_MIN_INTERVAL_S:
            raise HubError(429, "rate_limited", f"this repository was warmed up less than {WARM_MIN_INTERVAL_S:g} s ago")
        if len(self._warmed_s) > 10_000:  # forget old entries, so the map does not grow for ever
            self._warmed_s = {k: t for k, t in self._warmed_s.items() if now_s - t < WARM_MIN_INTERVAL_S}
        self._warmed_s[key] = now_s
        latest = self.store.list_repo_images(backend=self.backend_name, repo=repo, branch=branch)
        for row in latest:
            if row["status"] in ("ready", "building"):
                return {"started": False, "status": row["status"], "id": None}
        if latest and time.time() - latest[0]["created_at"] < WARM_RETRY_FAILED_AFTER_S:
            return {"started": False, "status": "failed", "id": None}
        row, started = self.request(repo, branch, who)
        return {"started": started, "status": row["status"], "id": row["id"]}

    async def keep_fresh(self, entries: list[str], interval_s: float) -> None:
        """Build each of ``prebuild_repos`` now and then every ``interval_s`` (0: only now), one
        after another. Errors are logged; the loop and the server carry on."""
        if not entries:
            return
        if not self.hub.backend.supports_snapshot:
            log.warning("c.CloudWorkspaces.prebuild_repos is set, but %s", UNSUPPORTED.format(name=self.backend_name))
            return
        while True:
            for entry in entries:
                repo, branch = parse_entry(entry)
                try:
                    row, _ = self.request(repo, branch, None)
                    done = await self.wait(row["id"])
                    if done["status"] != "ready":
                        log.error("prebuild of %s (c.CloudWorkspaces.prebuild_repos) failed: %s", entry, done["detail"])
                except HubError as exc:
                    log.error("c.CloudWorkspaces.prebuild_repos entry %r refused: %s", entry, exc.message)
                except Exception:
                    log.exception("prebuild of %s (c.CloudWorkspaces.prebuild_repos) failed in the hub", entry)
            if interval_s <= 0:
                return
            await asyncio.sleep(interval_s)
