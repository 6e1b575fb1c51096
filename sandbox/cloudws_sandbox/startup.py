"""The sandbox's start-up steps before the agent: the work tree (clone, or restore from a
snapshot or a repository image, then fetch) and the repository's setup script, each reported
as ``sandbox_progress`` events as it runs.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import gitops
from .credentials import CredentialBroker
from .protocol import ErrorEvent, SandboxProgressEvent, SandboxStatusEvent
from .redaction import Redactor
from .setup_script import SETUP_SCRIPT, OutputBatcher, ScriptRefused, find_setup_script, run_setup_script

RESTORE_KINDS = ("", "snapshot", "prebuild")
_RESTORED_FROM = {"snapshot": "a snapshot of this session's earlier sandbox", "prebuild": "a prebuilt repository image"}

Append = Callable[[Any], Any]


class StartupError(RuntimeError):
    """The sandbox cannot be made ready (the message says why)."""


class Step:
    """One ``sandbox_progress`` step: ``running`` when made, then ``done`` or ``failed``, each
    with the milliseconds since the step began."""

    def __init__(self, append: Append, step: str, detail: str = "") -> None:
        self.append, self.step = append, step
        self.started_s = time.monotonic()
        self.running(detail)

    @property
    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started_s) * 1000)

    def running(self, detail: str = "", output: str = "") -> None:
        self.append(SandboxProgressEvent(self.step, "running", self.elapsed_ms, detail, output))

    def done(self, detail: str = "") -> None:
        self.append(SandboxProgressEvent(self.step, "done", self.elapsed_ms, detail))

    def failed(self, detail: str, output: str = "") -> None:
        self.append(SandboxProgressEvent(self.step, "failed", self.elapsed_ms, detail, output))


@dataclass(frozen=True)
class WorkTree:
    detail: str  # for the ``ready`` status
    fresh: bool  # cloned just now: the setup script has not run on it


async def prepare_work_tree(
    *, repo: str, workdir: str, base_branch: str, branch: str, restore_kind: str, prebuild: bool, append: Append,
    upstream: gitops.Upstream, auth: CredentialBroker | None = None,
) -> WorkTree:
    """The work tree in place, on the session branch (on the base branch for a prebuild).
    ``upstream`` is where a fetch goes (``repo``, never the work tree's ``origin``); ``auth``
    gives the clone and fetch the repository's credential."""
    if restore_kind not in RESTORE_KINDS:
        raise StartupError(f"unknown restore_kind {restore_kind!r}: expected one of {RESTORE_KINDS}")
    present = (Path(workdir) / ".git").exists()
    if prebuild:
        if present:
            step = Step(append, "fetch", "fetching from origin")
            await _or_fail(step, gitops.fetch(workdir, upstream, auth))
        else:
            step = await _clone(repo, workdir, append, auth)
        base = await _or_fail(step, gitops.checkout_base(workdir, base_branch))
        step.done(f"on {base}")
        return WorkTree(f"prebuilt on {base}", fresh=True)
    if restore_kind:
        restore = Step(append, "restore", f"from {_RESTORED_FROM[restore_kind]}")
        if not present:
            note = (f"The work tree was not in {_RESTORED_FROM[restore_kind]}, so the repository is cloned "
                    "instead (and its setup script runs again).")  # fmt: skip
            restore.failed(note)
            append(ErrorEvent("restore_fell_back", note))
            # What is left there (a work tree whose .git the agent removed) would stop the clone.
            shutil.rmtree(workdir, ignore_errors=True)
            return await _clone_and_branch(repo, workdir, base_branch, branch, append, auth)
        # A snapshot taken while git was committing holds its lock; nothing runs git here yet.
        (Path(workdir) / ".git" / "index.lock").unlink(missing_ok=True)
        restore.done("work tree found")
        step = Step(append, "fetch", "fetching from origin")
        try:
            await gitops.fetch(workdir, upstream, auth)
            fetched = True
        except gitops.GitError as exc:  # the sandbox may work offline on what it has
            step.failed(f"could not fetch from origin; working from what the image holds: {exc}")
            fetched = False
        start = await _or_fail(step, gitops.restore_branch(workdir, base_branch, branch))
        if fetched:
            step.done(f"on branch {branch}")
        return WorkTree(f"on branch {branch}, restored from {_RESTORED_FROM[restore_kind]} ({start})", fresh=False)
    if present:  # a daemon restarted in the same sandbox: all was done before
        return WorkTree(f"on branch {branch}", fresh=False)
    return await _clone_and_branch(repo, workdir, base_branch, branch, append, auth)


async def _clone(repo: str, workdir: str, append: Append, auth: CredentialBroker | None) -> Step:
    what = f"cloning {gitops.redact(repo)}"
    append(SandboxStatusEvent("cloning", what))  # clients before sandbox_progress rely on it
    step = Step(append, "clone", what)
    await _or_fail(step, gitops.clone(repo, workdir, auth))
    return step


async def _clone_and_branch(repo: str, workdir: str, base_branch: str, branch: str, append: Append,
                            auth: CredentialBroker | None) -> WorkTree:  # fmt: skip
    step = await _clone(repo, workdir, append, auth)
    base = await _or_fail(step, gitops.prepare_branch(workdir, base_branch, branch))
    step.done(f"on branch {branch} from {base}")
    return WorkTree(f"on branch {branch} from {base}", fresh=True)


async def _or_fail(step: Step, work: Any) -> Any:
    try:
        return await work
    except gitops.GitError as exc:
        step.failed(str(exc))
        raise


async def run_setup_step(workdir: str, redactor: Redactor, timeout_s: float, append: Append) -> None:
    """Run the repository's setup script if it has one. Its failure is reported, never raised:
    the session stays usable without it."""
    try:
        script = find_setup_script(workdir)
    except ScriptRefused as exc:
        Step(append, "setup", SETUP_SCRIPT).failed(str(exc))
        return
    if script is None:
        return
    step = Step(append, "setup", f"running {SETUP_SCRIPT}")
    batcher = OutputBatcher(redactor, lambda text: step.running(output=text))
    outcome = await run_setup_script(script, workdir, dict(os.environ), timeout_s, batcher)
    if outcome.ok:
        step.done(outcome.detail)
    else:
        step.failed(outcome.detail, outcome.tail)
