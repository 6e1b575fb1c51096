"""Reviewing a session's work on the hub: its changes and diffs, read from a mirror of the
repository (never from the sandbox, which may be gone, and whose word is untrusted)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .changes import SHA, DiffLimits, compute_changes, merge_base
from .mirror import GitFailed, MirrorError, Mirrors

if TYPE_CHECKING:
    from ..hub import SessionHub

__all__ = ["DiffLimits", "Mirrors", "Review", "compute_changes"]


class Review:
    def __init__(self, hub: SessionHub, limits: DiffLimits = DiffLimits()) -> None:
        self.hub = hub
        self.limits = limits
        self._mirrors: Mirrors | None = None

    @property
    def mirrors(self) -> Mirrors:
        from ..hub import HubError

        if self._mirrors is None:
            if not self.hub.settings.data_dir:
                raise HubError(501, "no_data_dir", "changes need the hub's data_dir, where repository mirrors are kept")
            root = Path(self.hub.settings.data_dir) / "mirrors"
            self._mirrors = Mirrors(root, self.hub.github, self.hub.redactor.text)
        return self._mirrors

    async def changes(self, session: dict[str, Any], prompt_id: str | None) -> dict[str, Any]:
        """``GET sessions/{id}/changes[?prompt=ID]``: the session's changes from where its branch
        left the base branch (three dots), or one prompt's from HEAD before it to its commit."""
        from ..hub import HubError

        sid, branch = session["id"], session["branch"]
        store = self.hub.store
        answer: dict[str, Any] = {
            "session_id": sid, "prompt_id": prompt_id, "base": None, "head": None, "files": [],
            "totals": {"files": 0, "additions": 0, "deletions": 0}, "truncated": False,
        }  # fmt: skip
        if prompt_id is not None:
            try:
                prompt = store.get_prompt(prompt_id)
            except KeyError:
                prompt = None
            if prompt is None or prompt["session_id"] != sid:
                raise HubError(404, "unknown_prompt", f"session {sid!r} has no prompt {prompt_id!r}")
            found = store.events_of_type(sid, "git", limit=1, newest=True, where={"message_id": prompt_id})
        else:
            found = store.events_of_type(sid, "git", limit=1, newest=True, present=("sha",))
        event = found[0] if found else None
        if event is None or not event.get("sha"):
            return answer  # no commit yet: nothing changed
        head = self._commit(event["sha"], "sha")
        if prompt_id is not None and event.get("before") == head:
            return {**answer, "head": {"ref": branch, "sha": head}}  # the prompt changed nothing
        mirrors = self.mirrors
        repo = session["repo"]
        try:
            if prompt_id is not None:
                before = self._before(event)
                path = await mirrors.sync(repo, [branch], want=[head, *([before] if before else [])])
                self._check_pushed(event, await mirrors.has(path, [head]))
                if before is None and "before" not in event:  # an event from before `before` was sent
                    before = await self._first_parent(path, head)
                base = {"ref": branch, "sha": before} if before else None
            else:
                base_ref = session["base_branch"] or await mirrors.default_branch(repo)
                path = await mirrors.sync(repo, [b for b in (base_ref, branch) if b], want=[head])
                self._check_pushed(event, await mirrors.has(path, [head]))
                base_sha = await merge_base(path, f"refs/remotes/origin/{base_ref}", head) if base_ref else None
                if base_sha is None:
                    first = store.events_of_type(sid, "git", limit=1, present=("sha",))
                    if not self._started_empty(first):
                        await self._check_base(path, base_ref)
                before = base_sha
                base = {"ref": base_ref, "sha": base_sha} if base_sha else None
            result = await compute_changes(path, before, head, self.limits)
        except MirrorError as exc:
            raise HubError(502, "git_unreachable", str(exc)) from None
        except GitFailed as exc:
            raise HubError(502, "git_failed", self.hub.redactor.text(f"git could not diff the changes: {exc}")) from None
        return {**answer, "base": base, "head": {"ref": branch, "sha": head}, **result}

    @staticmethod
    def _commit(value: Any, key: str) -> str:
        from ..hub import HubError

        if not isinstance(value, str) or not SHA.fullmatch(value):
            raise HubError(502, "bad_commit", f"the session's git event names no commit in {key!r}")
        return value

    def _before(self, event: dict[str, Any]) -> str | None:
        before = event.get("before")
        return None if before is None else self._commit(before, "before")

    @staticmethod
    def _check_pushed(event: dict[str, Any], present: list[bool]) -> None:
        from ..hub import HubError

        if not all(present):
            why = f" (the push failed: {event['error']})" if event.get("error") else ""
            raise HubError(409, "not_pushed",
                           f"commit {event['sha'][:12]} never reached the repository{why}; its changes can be "
                           "shown once a later prompt pushes the branch")  # fmt: skip

    @staticmethod
    def _started_empty(first: list[dict[str, Any]]) -> bool:
        """Whether the session began on a repository with no commit (its first commit's ``git``
        event, the one in ``first``, has ``before: null``): then it has no base, and all its
        files are added."""
        return bool(first) and "before" in first[0] and first[0]["before"] is None

    async def _check_base(self, path: Path, base_ref: str | None) -> None:
        """Refuse to diff against nothing when the base branch is gone from origin (deleted or
        renamed): the whole repository would show as the session's work."""
        from ..hub import HubError

        if base_ref and all(await self.mirrors.has(path, [f"refs/remotes/origin/{base_ref}"])):
            return  # there, but shares no history with the session's branch: shown from nothing
        where = f"the base branch {base_ref!r} is" if base_ref else "the repository's default branch is"
        raise HubError(409, "base_missing",
                       f"{where} no longer on the repository (deleted or renamed?), so the session's changes "
                       "cannot be told apart from the rest of it; push the branch again, or ask for one "
                       "prompt's changes (?prompt=ID)")  # fmt: skip

    @staticmethod
    async def _first_parent(path: Path, head: str) -> str | None:
        from .mirror import run_git

        out = await run_git(path, "rev-parse", "--verify", "--quiet", f"{head}^1", check=False)
        sha = out.decode(errors="replace").strip()
        return sha if SHA.fullmatch(sha) else None
