"""The session hub: sessions, prompts, subscriptions — what the REST and WebSocket routes call.

Independent of tornado and jupyter-server, so the same core can be mounted in a standalone
JupyterHub service. One :class:`~.runner.SessionRunner` per session owns its bridge and queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .backends.base import SandboxBackend
from .github import GitHub
from cloudws_sandbox.idle import IDLE_TIMEOUT_ENV, RUNTIME_IDLE_GRACE_S
from cloudws_sandbox.redaction import Redactor
from cloudws_sandbox.protocol import (
    PromptRequest,
    ProtocolError,
    UserMessage,
    check_branch,
    check_model,
    event_frame,
    session_frame,
    subscribed_frame,
)
from .runner import SessionRunner, Subscriber
from .store import QueueFull, SessionStore, UnknownSession, new_id

log = logging.getLogger("jupyter_cloudws.hub")

# user@host:path, git's scp-like syntax; neither user nor host may look like an option.
_SCP_LIKE = re.compile(r"^\w[\w.-]*@\w[\w.-]*:[\w./~-]+$")
REPO_RULE = "a git URL (https://, http://, ssh://, git://, or user@host:path)"


class HubError(Exception):
    """A request the hub refuses; ``status`` is the HTTP status, ``code`` the error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class HubSettings:
    max_prompt_bytes: int = 100_000
    max_queue_length: int = 20
    replay_limit: int = 500
    default_model: str | None = None
    allow_local_repos: bool = True
    # Local repositories must resolve to a path under one of these (symlinks resolved)...
    local_repo_roots: tuple[str, ...] = ()
    # ...and never under these (the hub's own data: other sessions' work trees, the database).
    forbidden_repo_roots: tuple[str, ...] = ()
    attach_timeout_s: float = 60.0
    bridge_heartbeat_s: float = 5.0  # ping the sandbox this often; 0 turns the heartbeat off
    bridge_heartbeat_timeout_s: float = 20.0  # a bridge silent this long is taken as lost
    max_reattach_attempts: int = 5  # tries to reach a sandbox again before giving it up
    reconnect_base_s: float = 0.2  # first pause between those tries; it doubles up to 5 s
    websocket_outbox_max_bytes: int = 16 * 1024 * 1024  # a client further behind is dropped
    agent_env: dict[str, str] = field(default_factory=dict, repr=False)
    secret_names: tuple[str, ...] = ()
    sandbox_idle_timeout_s: float = 600.0  # 0: sandboxes stay until archived
    setup_timeout_s: float = 1800.0  # a repository's .cloudws/setup.sh, at most
    data_dir: str = ""  # holds conversations/<session id>; empty: each sandbox keeps its own
    prebuild_timeout_s: float = 1800.0  # a repository prebuild (clone and setup script) ends after this


@dataclass(frozen=True)
class Requester:
    """Who is asking: the username sessions are owned by, and whether the authorizer made
    them a cloudws admin (who sees and acts on every session)."""

    username: str
    is_admin: bool = False

    def may_see(self, session: dict[str, Any]) -> bool:
        return self.is_admin or session["owner"] == self.username


class SessionHub:
    def __init__(self, store: SessionStore, backend: SandboxBackend, settings: HubSettings,
                 github: GitHub | None = None) -> None:  # fmt: skip
        self.store = store
        self.backend = backend
        self.settings = settings
        self.github = github if github is not None else GitHub(token="")
        self._runners: dict[str, SessionRunner] = {}
        self.closing = False
        # The git token too: a host's error or a sandbox's output may quote it.
        secrets = [settings.agent_env.get(name) for name in settings.secret_names] + [self.github.token]
        self.redactor = Redactor(secrets)
        from .prebuild import Prebuilds  # prebuild.py builds on this module

        self.prebuilds = Prebuilds(self)
        from .review import Review  # review builds on this module too

        self.review = Review(self)
        from .github.pulls import PullRequests  # pulls.py builds on this module too

        self.pull_requests = PullRequests(self)

    async def start(self) -> None:
        """Find again what a previous server left: live sandboxes and unfinished prompts."""
        ids = set(self.store.session_ids_with_sandboxes()) | set(self.store.session_ids_with_active_prompts())
        for sid in ids:
            self.runner(sid).resume()
        self.prebuilds.start()
        self._orphan_sweep = asyncio.get_running_loop().create_task(self.end_orphans())

    async def end_orphans(self) -> list[str]:
        """End the sandboxes this hub started that no session claims (a session archived or
        deleted while the server was down, a prebuild cut short). Returns their ids."""
        claimed = {self.store.sandbox_record(sid)["sandbox_id"] for sid in self.store.session_ids_with_sandboxes()}
        try:
            orphans = await self.backend.orphans(claimed)
        except Exception as exc:  # no credentials, an unreachable API: nothing to sweep now
            log.warning("could not list the backend's sandboxes to end orphans: %s", exc)
            return []
        for sandbox_id in orphans:
            log.info("ending sandbox %s: no session claims it", sandbox_id)
            try:
                await self.backend.terminate(sandbox_id)
            except Exception:
                log.exception("ending orphaned sandbox %s failed", sandbox_id)
        return orphans

    async def close(self) -> None:
        """Let go of bridges; the sandboxes keep working for the next server."""
        self.closing = True
        sweep = getattr(self, "_orphan_sweep", None)
        if sweep is not None:
            sweep.cancel()
        await asyncio.gather(*(r.close() for r in self._runners.values()), return_exceptions=True)
        await self.prebuilds.close()  # a build's sandbox is ended: nobody would snapshot it

    def runner(self, session_id: str) -> SessionRunner:
        if session_id not in self._runners:
            self.store.get_session(session_id)
            self._runners[session_id] = SessionRunner(self, session_id)
        return self._runners[session_id]

    def sandbox_env(self, *, secrets: bool = True) -> dict[str, str]:
        """The environment of a new sandbox: the agent's, and when the runtime ends itself.
        Without ``secrets`` (a prebuild, whose disk becomes an image every session starts from),
        the agent's secret variables are left out: a setup script could write them to disk."""
        env = {k: v for k, v in self.settings.agent_env.items() if secrets or k not in self.settings.secret_names}
        if self.settings.sandbox_idle_timeout_s > 0:
            env[IDLE_TIMEOUT_ENV] = f"{self.settings.sandbox_idle_timeout_s + RUNTIME_IDLE_GRACE_S:g}"
        return env

    def prebuilt_image(self, repo: str, base_branch: str) -> str | None:
        """The id of a ready prebuilt image of ``repo`` at ``base_branch`` on this hub's backend,
        if there is one (``jupyter cloudws prebuild``)."""
        return self.prebuilds.ready_image(repo, base_branch)

    def prebuilt_image_gone(self, image_id: str, reason: str) -> None:
        """A spawn found the repository image missing or expired: stop handing it out."""
        self.prebuilds.image_gone(image_id, reason)

    def conversation_dir(self, session_id: str) -> str | None:
        """The host directory of a session's agent conversation, shared by all its sandboxes
        in turn, so a fresh sandbox resumes where the last one stopped."""
        if not self.settings.data_dir:
            return None
        path = Path(self.settings.data_dir) / "conversations" / session_id
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        return str(path)

    def release_if_idle(self, runner: SessionRunner) -> None:
        """Forget a runner with nothing to do (the store keeps its session), so that memory
        grows with the sessions at work, not with every session ever opened."""
        if not self.closing and self._runners.get(runner.session_id) is runner and runner.at_rest():
            del self._runners[runner.session_id]
            runner.idle.cancel()

    # -- sessions ---------------------------------------------------------------------------

    def get_session(self, session_id: str, who: Requester) -> dict[str, Any]:
        """The session, if ``who`` may see it. Every route that names a session comes through
        here, so another user's session is exactly as unknown as a session that never existed."""
        try:
            session = self.store.get_session(session_id)
        except UnknownSession:
            session = None
        if session is None or not who.may_see(session):
            raise HubError(404, "unknown_session", f"no session {session_id!r}")
        return session

    def list_sessions(self, who: Requester, *, q: str | None = None, archived: bool | None = False) -> list[dict[str, Any]]:
        """The sessions ``who`` may see: their own, or all of them for an admin."""
        return self.store.list_sessions(q=q, archived=archived, owner=None if who.is_admin else who.username)

    def create_session(self, body: dict[str, Any], owner: str) -> dict[str, Any]:
        repo = self.check_repo(body.get("repo"))
        try:
            base_branch = check_branch(body.get("base_branch"))
            model = check_model(body.get("model")) or self.settings.default_model
        except ProtocolError as exc:
            raise protocol_error(exc) from None
        title = _opt_text(body, "title", 200)
        sid = new_id()
        title = title or _repo_name(repo)
        return self.store.create_session(
            owner=owner, repo=repo, base_branch=base_branch, branch=f"cloudws/{sid[:8]}", title=title,
            model=model, session_id=sid,
        )  # fmt: skip

    def update_session(self, session_id: str, body: dict[str, Any], who: Requester) -> dict[str, Any]:
        before = self.get_session(session_id, who)
        changes: dict[str, Any] = {}
        if "title" in body:
            title = _opt_text(body, "title", 200)
            if not title or not title.strip():
                raise HubError(400, "bad_request", "'title' must be a non-empty string")
            changes["title"] = title.strip()
        if "archived" in body:
            if not isinstance(body["archived"], bool):
                raise HubError(400, "bad_request", "'archived' must be true or false")
            changes["archived"] = body["archived"]
        unknown = set(body) - {"title", "archived"}
        if unknown:
            raise HubError(400, "bad_request", f"cannot change {', '.join(sorted(unknown))}")
        archiving = changes.get("archived") is True and not before["archived"]
        session = self.store.update_session(session_id, **changes)
        runner = self.runner(session_id)
        runner.publish(session_frame(session))
        if archiving:
            # An archived session keeps its transcript and branch, not a running sandbox.
            runner.spawn(runner.retire("the session was archived"))
        self.release_if_idle(runner)
        return session

    def check_repo(self, repo: Any) -> str:
        allowed = REPO_RULE + (" or an absolute path to a git repository" if self.settings.allow_local_repos else "")
        if not isinstance(repo, str) or not repo.strip():
            raise HubError(400, "bad_request", f"'repo' must be {allowed}")
        repo = repo.strip()
        if repo.startswith("-"):  # git would read it as an option (--upload-pack=...)
            raise HubError(400, "bad_repo", f"'repo' may not begin with '-'; it must be {allowed}")
        parsed = urlparse(repo)
        if parsed.scheme in ("https", "http", "ssh", "git"):
            if parsed.password or (parsed.username and parsed.scheme in ("https", "http")):
                raise HubError(400, "credentials_in_url",
                               "a repository URL may not carry credentials: the server's c.GitHub.token (or GITHUB_TOKEN) "
                               "gives the sandbox access to private repositories on c.GitHub.url")  # fmt: skip
            if not parsed.hostname or parsed.hostname.startswith("-") or (parsed.username or "").startswith("-"):
                raise HubError(400, "bad_repo", f"{repo!r} names no host, or one that begins with '-'; 'repo' must be {allowed}")
            return repo
        if _SCP_LIKE.match(repo):
            return repo
        if not self.settings.allow_local_repos:
            raise HubError(400, "bad_repo", f"{repo!r} is not {REPO_RULE} (local repositories are not allowed here)")
        path = Path(parsed.path if parsed.scheme == "file" else os.path.expanduser(repo))
        if parsed.scheme not in ("", "file") or not path.is_absolute():
            raise HubError(400, "bad_repo", f"{repo!r} is neither {REPO_RULE} nor an absolute path")
        resolved = self.check_local_root(path)
        if not ((resolved / "HEAD").is_file() or (resolved / ".git").exists()):
            raise HubError(400, "bad_repo", f"{str(path)!r} is not a git repository")
        return str(resolved)

    def check_local_root(self, path: Path) -> Path:
        """``path`` with symlinks resolved, if it lies under an allowed root and outside the
        hub's own data. Resolving first stops a symlink inside a root from reaching out of it."""
        resolved = Path(os.path.realpath(path))
        roots = [Path(os.path.realpath(r)) for r in self.settings.local_repo_roots]
        inside = any(resolved == root or root in resolved.parents for root in roots)
        forbidden = [Path(os.path.realpath(r)) for r in self.settings.forbidden_repo_roots]
        if not inside or any(resolved == f or f in resolved.parents for f in forbidden):
            listed = ", ".join(str(r) for r in roots) or "none are configured"
            raise HubError(400, "repo_outside_roots",
                           f"{str(path)!r} is not under a directory local repositories may come from "
                           f"({listed}; see c.CloudWorkspaces.local_repo_roots), or it is in the hub's own data")  # fmt: skip
        return resolved

    # -- prompts ----------------------------------------------------------------------------

    def submit_prompt(
        self, session_id: str, request: PromptRequest, author: dict[str, Any], who: Requester
    ) -> dict[str, Any]:
        """Queue a prompt (once per ``client_request_id``) and wake the session's runner."""
        session = self.get_session(session_id, who)
        if session["archived"]:
            raise HubError(409, "archived", "the session is archived; unarchive it to send prompts")
        try:
            # The prompt and the user_message that shows it are stored together or not at all.
            with self.store.transaction():
                prompt, created = self.store.enqueue_prompt(
                    session_id, text=request.text, model=request.model,
                    client_request_id=request.client_request_id, author=author,
                    max_queue=self.settings.max_queue_length,
                )  # fmt: skip
                shown = None
                if created:
                    shown = self.store.append_event(
                        session_id, UserMessage(prompt["id"], request.text, author, request.model)
                    )
        except QueueFull as exc:
            raise HubError(429, "queue_full", str(exc)) from None
        runner = self.runner(session_id)
        if shown is not None:
            runner.publish(event_frame(shown))
            runner.kick()
        self.release_if_idle(runner)
        return {"message_id": prompt["id"], "position": prompt["queue_position"], "duplicate": not created}

    async def stop(self, session_id: str, who: Requester) -> None:
        self.get_session(session_id, who)
        runner = self.runner(session_id)
        await runner.stop()
        self.release_if_idle(runner)

    def warm_up(self, session_id: str, who: Requester) -> None:
        """The user is typing: start the sandbox now so the prompt need not wait for it."""
        if self.get_session(session_id, who)["archived"]:
            return  # archiving ended its sandbox; typing must not bring it back
        self.runner(session_id).warm_up()

    # -- review -----------------------------------------------------------------------------

    async def changes(self, session_id: str, who: Requester, prompt_id: str | None = None) -> dict[str, Any]:
        """The session's changes (base branch to session branch), or one prompt's."""
        return await self.review.changes(self.get_session(session_id, who), prompt_id)

    # -- events -----------------------------------------------------------------------------

    def events_page(
        self, session_id: str, after: int, limit: int, who: Requester
    ) -> tuple[list[dict[str, Any]], bool]:
        self.get_session(session_id, who)
        return self.store.events_after(session_id, after, min(limit, self.settings.replay_limit))

    def subscribe(
        self, session_id: str, after: int | None, callback: Subscriber, who: Requester
    ) -> tuple[dict[str, Any], Callable[[], None] | None]:
        """The ``subscribed`` frame, and an unsubscribe function when live events follow.

        The replay is read and the callback registered with no ``await`` between, so no event
        falls in the gap and none comes twice. When ``has_more`` is true nothing is registered:
        the client subscribes again after the last event it got.
        """
        session = self.get_session(session_id, who)
        limit = self.settings.replay_limit
        if after is None:
            events, has_more = self.store.latest_events(session_id, limit)
            live = True
        else:
            events, has_more = self.store.events_after(session_id, after, limit)
            live = not has_more
        frame = subscribed_frame(session, events, has_more)
        if not live:
            return frame, None
        runner = self.runner(session_id)
        runner.subscribers.add(callback)

        def unsubscribe() -> None:
            runner.subscribers.discard(callback)
            self.release_if_idle(runner)

        return frame, unsubscribe


def _opt_text(body: dict[str, Any], key: str, max_len: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise HubError(400, "bad_request", f"{key!r} must be a string of at most {max_len} characters")
    return value


def _repo_name(repo: str) -> str:
    name = repo.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return name.removesuffix(".git") or repo


def protocol_error(exc: ProtocolError) -> HubError:
    status = 413 if exc.code == "prompt_too_large" else 400
    return HubError(status, exc.code, exc.message)
