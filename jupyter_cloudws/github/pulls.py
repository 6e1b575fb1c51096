"""A session's pull request, the repository picker's lists, and a session's artifacts.

What the routes ``github/repos``, ``github/repos/{owner}/{repo}/branches``,
``sessions/{id}/pull-request``, ``sessions/{id}/pull-request/draft`` and ``sessions/{id}/artifacts``
call. A pull request is stored as an artifact ``{number, url, state, title, base, head}``; every
time one is opened, found or seen in a new state, a hub-only ``pull_request`` event is appended,
so a subscribed chat shows it live.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cloudws_sandbox.protocol import PullRequestEvent

from ..hub import HubError, Requester
from ..pushing import PushRefused
from .api import GitHubClient, GitHubError, pull_state

if TYPE_CHECKING:
    from ..hub import SessionHub

log = logging.getLogger("jupyter_cloudws.github")

PULL_REQUEST = "pull_request"  # the artifact kind
LIVE_STATES = ("open", "draft")  # states that may still change on the host
REFRESH_INTERVAL_S = 5.0  # a session's open pull requests are asked about at most this often
MAX_TITLE_CHARS = 72  # git's and GitHub's convention for a one-line summary
MAX_BODY_PROMPTS = 20
MAX_PROMPT_CHARS = 500
MAX_SUMMARY_CHARS = 4000
MAX_BODY_CHARS = 60_000  # GitHub takes 65,536 characters
MAX_REQUEST_TITLE_CHARS = 256
MAX_QUERY_CHARS = 200


def hub_error(exc: GitHubError) -> HubError:
    return HubError(exc.status, exc.code, exc.message)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def draft_title(first_prompt: str | None) -> str:
    line = next((line.strip() for line in (first_prompt or "").splitlines() if line.strip()), "")
    return _clip(line, MAX_TITLE_CHARS) or "Changes from a cloudws session"


def draft_body(session_id: str, prompts: list[str], summary: str | None, prompt_total: int) -> str:
    parts = []
    if summary and summary.strip():
        parts.append(_clip(summary.strip(), MAX_SUMMARY_CHARS))
    listed = "\n".join(
        f"{i}. " + _clip(" ".join(text.split()), MAX_PROMPT_CHARS) for i, text in enumerate(prompts, start=1)
    )
    if listed:
        more = f"\n\n…and {prompt_total - len(prompts)} more." if prompt_total > len(prompts) else ""
        parts.append("## Prompts\n\n" + listed + more)
    parts.append(f"Cloudws-Session: {session_id}")
    return _clip("\n\n".join(parts), MAX_BODY_CHARS)


def artifact_view(row: dict[str, Any]) -> dict[str, Any]:
    """An artifact as the REST API shows it: its data beside its id, kind and times."""
    return {**row["data"], "id": row["id"], "kind": row["kind"], "created_at": row["created_at"],
            "updated_at": row["updated_at"]}  # fmt: skip


class PullRequests:
    def __init__(self, hub: SessionHub) -> None:
        self.hub = hub
        self.refresh_interval_s = REFRESH_INTERVAL_S
        self.clock = time.monotonic
        self._last_refresh: dict[str, float] = {}  # only the last interval's: older ones are due anyway
        # A session's lock lives while a create holds or awaits it, then goes (see Mirrors._locks).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @property
    def github(self) -> Any:
        return self.hub.github

    def full_name(self, repo: str) -> str | None:
        """``owner/name`` of a clone URL on the configured git host, or None."""
        if not self.github.hosts(repo):
            return None
        path = urlsplit(repo).path.removeprefix(urlsplit(self.github.url).path).strip("/").removesuffix(".git")
        parts = path.split("/")
        return path if len(parts) == 2 and all(parts) else None

    def _client(self) -> GitHubClient:
        try:
            return GitHubClient(self.github)
        except GitHubError as exc:
            raise hub_error(exc) from None

    # -- the new-session form -------------------------------------------------------------------

    async def list_repos(self, q: str | None) -> dict[str, Any]:
        if not self.github.token:
            return {"configured": False, "repos": []}
        if q is not None and len(q) > MAX_QUERY_CHARS:
            raise HubError(400, "bad_request", f"'q' must be at most {MAX_QUERY_CHARS} characters")
        try:
            async with self._client() as gh:
                repos = await gh.list_repos()
        except GitHubError as exc:
            raise hub_error(exc) from None
        wanted = (q or "").strip().lower()
        listed = [
            {"full_name": r.get("full_name"), "private": bool(r.get("private")), "pushed_at": r.get("pushed_at"),
             "default_branch": r.get("default_branch"), "clone_url": r.get("clone_url"),
             "description": r.get("description")}
            for r in repos
            if not wanted or wanted in f"{r.get('full_name') or ''}\n{r.get('description') or ''}".lower()
        ]  # fmt: skip
        # Newest push first whatever order the host used; ISO 8601 UTC sorts as text.
        listed.sort(key=lambda r: r["pushed_at"] or "", reverse=True)
        return {"configured": True, "repos": listed}

    async def list_branches(self, owner: str, repo: str) -> dict[str, Any]:
        try:
            async with self._client() as gh:
                info = await gh.get_repo(owner, repo)
                branches = await gh.list_branches(owner, repo)
        except GitHubError as exc:
            raise hub_error(exc) from None
        default = info.get("default_branch")
        listed = [{"name": b.get("name"), "protected": bool(b.get("protected"))} for b in branches]
        listed.sort(key=lambda b: (b["name"] != default, b["name"] or ""))  # the default first
        return {"default_branch": default, "branches": listed}

    # -- a session's pull request ---------------------------------------------------------------

    def draft(self, session_id: str, who: Requester) -> dict[str, str]:
        self.hub.get_session(session_id, who)
        store = self.hub.store
        prompts = store.events_of_type(session_id, "user_message", limit=MAX_BODY_PROMPTS)
        total = len(prompts)
        if total == MAX_BODY_PROMPTS:
            total = len(store.events_of_type(session_id, "user_message"))
        last_text = store.events_of_type(session_id, "assistant_text", limit=1, newest=True)
        texts = [p["text"] for p in prompts]
        return {
            "title": draft_title(texts[0] if texts else None),
            "body": draft_body(session_id, texts, last_text[0]["text"] if last_text else None, total),
        }

    def _push_state(self, session_id: str) -> tuple[str, dict[str, Any] | None]:
        """``pushed``, ``nothing`` (no commit was ever made) or ``unpushed`` (the newest commit,
        or work left uncommitted, is not on the host), from the session's ``git`` events, with
        the newest of them."""
        gits = self.hub.store.events_of_type(session_id, "git", limit=1000, newest=True)
        last = gits[0] if gits else None
        pushed = next((e for e in gits if e.get("pushed")), None)
        if last is not None and not last.get("error") and pushed is not None and pushed.get("sha") == last.get("sha"):
            return "pushed", last
        if pushed is None and not any(e.get("committed") or e.get("error") for e in gits):
            return "nothing", last
        return "unpushed", last

    async def _ensure_pushed(self, session: dict[str, Any], author: dict[str, Any]) -> None:
        """Push the branch first when the session's own record says the host lacks its work
        (the last push failed, or the commit before it): through the running sandbox, else refuse
        saying what to do."""
        sid, branch = session["id"], session["branch"]
        state, last = self._push_state(sid)
        if state == "pushed":
            return
        if state == "nothing":
            raise HubError(409, "not_pushed", f"the session has pushed nothing to {branch} yet: "
                           "send a prompt that changes something first")  # fmt: skip
        why = (f"the last push of {branch} failed: {last['error']}" if last and last.get("error")
               else f"the last commit on {branch} was not pushed")  # fmt: skip
        runner = self.hub.runner(sid)
        try:
            await runner.push_branch(author)
        except PushRefused as exc:
            if exc.code == "busy":
                raise HubError(409, "busy", f"{why}, and a prompt is running in the session: wait for the running "
                               "prompt to finish (it pushes the branch), then ask again") from None  # fmt: skip
            if exc.code == "timeout":
                raise HubError(504, "push_timeout", f"{why}; pushing it again: {exc.message}") from None
            if exc.code == "not_running":
                raise HubError(409, "not_pushed", f"{why}, and the session's sandbox is not running to push it "
                               "again: the next prompt pushes the branch (send one), then ask again") from None  # fmt: skip
            raise HubError(409, "not_pushed", f"{why}, and the sandbox cannot push it now: {exc.message}") from None
        finally:
            self.hub.release_if_idle(runner)
        state, last = self._push_state(sid)
        if state != "pushed":
            error = (last or {}).get("error") or "the sandbox pushed nothing"
            raise HubError(409, "not_pushed", f"pushing {branch} again failed: {error}")

    async def create(self, session_id: str, who: Requester, body: dict[str, Any],
                     author: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:  # fmt: skip
        """Open the session's pull request, or link the one its branch already has; push the
        branch first when its last push failed (``author`` commits what was left uncommitted)."""
        unknown = set(body) - {"title", "body", "draft"}
        if unknown:
            raise HubError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
        title, text, draft = body.get("title"), body.get("body"), body.get("draft", False)
        if title is not None and (not isinstance(title, str) or not title.strip() or len(title) > MAX_REQUEST_TITLE_CHARS):
            raise HubError(400, "bad_request", f"'title' must be a non-empty string of at most {MAX_REQUEST_TITLE_CHARS} characters")
        if text is not None and (not isinstance(text, str) or len(text) > MAX_BODY_CHARS):
            raise HubError(400, "bad_request", f"'body' must be a string of at most {MAX_BODY_CHARS} characters")
        if not isinstance(draft, bool):
            raise HubError(400, "bad_request", "'draft' must be true or false")
        session = self.hub.get_session(session_id, who)
        full_name = self.full_name(session["repo"])
        if full_name is None:
            raise HubError(400, "not_on_github", f"the session's repository is not on {self.github.url} "
                           "(c.GitHub.url), so no pull request can be opened for it")  # fmt: skip
        owner, name = full_name.split("/")
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        async with lock:  # two clicks must not open two pull requests
            client = self._client()
            await self._ensure_pushed(session, author or {"username": who.username})
            try:
                async with client as gh:
                    # Only an open (or draft) one is linked: GitHub opens a new one once the old is
                    # closed or merged, and the old stays among the artifacts.
                    existing = await gh.find_pulls(owner, name, session["branch"], state="open")
                    if existing:
                        return self._record(session_id, existing[0]), False
                    base = session["base_branch"] or (await gh.get_repo(owner, name)).get("default_branch")
                    drafted = self.draft(session_id, who) if title is None or text is None else {}
                    try:
                        pull = await gh.create_pull(
                            owner, name, title=(title or drafted["title"]).strip(), head=session["branch"], base=base,
                            body=text if text is not None else drafted["body"], draft=draft,
                        )  # fmt: skip
                    except GitHubError as exc:
                        if exc.code == "github_validation" and "head" in exc.message:
                            raise HubError(409, "not_pushed", f"{session['branch']} is not on {full_name}: "
                                           "it was never pushed, or was deleted") from None  # fmt: skip
                        raise
            except GitHubError as exc:
                raise hub_error(exc) from None
            return self._record(session_id, pull), True

    def _record(self, session_id: str, pull: dict[str, Any]) -> dict[str, Any]:
        """Store the pull request as the session's artifact (new, or the same number updated)
        and append a ``pull_request`` event when it is new or its state or title changed."""
        data = {
            "number": int(pull["number"]), "url": pull.get("html_url") or "", "state": pull_state(pull),
            "title": pull.get("title") or "", "base": (pull.get("base") or {}).get("ref"),
            "head": (pull.get("head") or {}).get("ref"),
        }  # fmt: skip
        store = self.hub.store
        known = next((a for a in store.artifacts(session_id)
                      if a["kind"] == PULL_REQUEST and a["data"].get("number") == data["number"]), None)  # fmt: skip
        if known is None:
            row = store.add_artifact(session_id, PULL_REQUEST, data)
        elif known["data"] != data:
            row = store.update_artifact(known["id"], data)
        else:
            return artifact_view(known)
        if known is None or (known["data"]["state"], known["data"]["title"]) != (data["state"], data["title"]):
            runner = self.hub.runner(session_id)
            runner.append(PullRequestEvent(data["number"], data["url"], data["state"], data["title"]))
            self.hub.release_if_idle(runner)
        return artifact_view(row)

    # -- artifacts ------------------------------------------------------------------------------

    async def artifacts(self, session_id: str, who: Requester) -> list[dict[str, Any]]:
        """The session's artifacts; open pull requests are first asked about again (at most once
        every ``refresh_interval_s`` per session). A host that cannot be asked leaves them as stored."""
        session = self.hub.get_session(session_id, who)
        rows = self.hub.store.artifacts(session_id)
        live = [a for a in rows if a["kind"] == PULL_REQUEST and a["data"].get("state") in LIVE_STATES]
        full_name = self.full_name(session["repo"])
        now = self.clock()
        due = now - self._last_refresh.get(session_id, float("-inf")) >= self.refresh_interval_s
        if live and full_name and self.github.token and due:
            self._last_refresh = {k: t for k, t in self._last_refresh.items() if now - t < self.refresh_interval_s}
            self._last_refresh[session_id] = now
            owner, name = full_name.split("/")
            try:
                async with GitHubClient(self.github) as gh:
                    for row in live:
                        self._record(session_id, await gh.get_pull(owner, name, row["data"]["number"]))
            except GitHubError as exc:
                log.warning("could not refresh the pull requests of session %s: %s", session_id, exc.message)
            rows = self.hub.store.artifacts(session_id)
        return [artifact_view(a) for a in rows]
