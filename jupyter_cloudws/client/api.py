"""The hub's API for kernel code: sessions to list, create and drive.

Synchronous on purpose (a notebook cell calls it and gets an answer); the live streams run on
one background thread per Client (see ``background.py``), never on the kernel's own loop.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .background import LoopThread
from .discovery import find_server, normalize_url
from .http import HubHttp
from .session import Session
from .stream import Emit, SessionStream
from .transcript import Transcript

_ARCHIVED_PARAM = {False: "false", True: "true", None: "all"}


class Client:
    """A Jupyter server's jupyter_cloudws API at ``url`` (its base URL, prefix included).

    ``max_attempts``, ``backoff_base_s`` and ``ping_interval_s`` tune the live streams (see
    ``stream.py``); ``http_transport`` replaces httpx's for the REST calls (a unix socket, tests).
    ``headers`` go with every request and stream handshake besides the token (the panel's
    loopback client carries the browser's cookies this way); ``ssl_context`` verifies an HTTPS
    server's certificate in place of the system's trust store, for REST and streams alike.
    ``trust_env`` False makes every request and stream ignore the proxy variables of the
    environment (``HTTP_PROXY``, ``ALL_PROXY``...): the panel's loopback goes straight to
    127.0.0.1, never through a proxy that would read the browser's cookies.
    """

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        timeout_s: float = 30.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        ping_interval_s: float = 15.0,
        http_transport: httpx.BaseTransport | None = None,
        how: str = "given",
        headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = True,
    ) -> None:
        self.url = normalize_url(url)
        self.how = how  # how the server was found, for people
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.ping_interval_s = ping_interval_s
        self._ssl_context = ssl_context
        self._trust_env = trust_env
        self._http = HubHttp(self.url, token, timeout_s, http_transport, extra_headers=headers,
                             verify=ssl_context if ssl_context is not None else True, trust_env=trust_env)  # fmt: skip
        self._loop = LoopThread()
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- REST -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``{version, backend}`` of the server's jupyter_cloudws."""
        return self._http.request("GET", "/status")

    def sessions(self, q: str | None = None, archived: bool | None = False) -> list[Session]:
        """Sessions, newest first. ``q`` matches title or repo; ``archived=None`` lists both."""
        if archived not in _ARCHIVED_PARAM:
            raise ValueError(f"archived must be True, False or None (both), not {archived!r}")
        params: dict[str, Any] = {"archived": _ARCHIVED_PARAM[archived]}
        if q:
            params["q"] = q
        return [self._session_for(s) for s in self._http.request("GET", "/sessions", params=params)["sessions"]]

    def new_session(
        self, repo: str | Path, base_branch: str | None = None, title: str | None = None, model: str | None = None
    ) -> Session:
        """Start a session on ``repo`` (a git URL or, on the local backend, a path)."""
        body: dict[str, Any] = {"repo": str(repo)}
        for key, value in (("base_branch", base_branch), ("title", title), ("model", model)):
            if value is not None:
                body[key] = value
        return self._session_for(self._http.request("POST", "/sessions", json=body))

    def warm(self, repo: str | Path, base_branch: str | None = None) -> dict[str, Any]:
        """A hint that a session on ``repo`` is coming: the server builds the repository's image
        now if it has none (on a backend that can snapshot), so the session starts from it.
        ``{started, status, id}``; 429 (:class:`CloudwsError`) when asked again within 30 s."""
        return self._http.request("POST", "/warm", json={"repo": str(repo), "branch": base_branch or ""})

    def session(self, id: str) -> Session:
        """The session with this id; raises :class:`UnknownSession` if there is none."""
        if id in ("", ".", ".."):  # path segments the URL resolves: "sessions/." is the list
            raise ValueError(f"{id!r} is not a session id")
        return self._session_for(self._http.request("GET", f"/sessions/{quote(id, safe='')}"))

    def recent_repos(self, limit: int = 8) -> list[str]:
        """Repositories of sessions (archived ones too), most recently used first, each once."""
        sessions = self._http.request("GET", "/sessions", params={"archived": "all"})["sessions"]
        sessions.sort(key=lambda s: s.get("updated_at") or 0, reverse=True)
        repos: list[str] = []
        for s in sessions:
            if s["repo"] not in repos:
                repos.append(s["repo"])
        return repos[:limit]

    def github_repos(self, q: str | None = None) -> dict[str, Any]:
        """The repositories the server's GitHub token can see, most recently pushed first, for the
        new-session form: ``{configured, repos: [{full_name, private, pushed_at, default_branch,
        clone_url, description}]}``. ``q`` keeps those whose name or description holds it
        (ignoring case). ``configured`` is False, with no repositories, when the server has no
        token (``c.GitHub.token``). A refusal of the host raises :class:`CloudwsError`."""
        return self._http.request("GET", "/github/repos", params={"q": q} if q else None)

    def github_branches(self, full_name: str) -> dict[str, Any]:
        """``{default_branch, branches: [{name, protected}]}`` of ``full_name`` (``OWNER/NAME``),
        the default branch first."""
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"a repository is named OWNER/NAME, not {full_name!r}")
        return self._http.request("GET", f"/github/repos/{quote(owner, safe='')}/{quote(name, safe='')}/branches")

    def panel(self, session: Session) -> Any:
        """A link that, displayed in JupyterLab or Notebook 7, opens ``session`` in the Claude Code
        side panel (the lab extension's: no kernel behind it)."""
        from ..widget.panel import open_panel

        return open_panel(session)

    def chat(self, session: Session | None = None) -> Any:
        """The chat widget to display in a cell: ``session``'s, or the session picker."""
        from ..widget.panel import widget_for

        return widget_for(self, session)

    def _session_for(self, data: dict[str, Any]) -> Session:
        """One Session object per id, so that its stream and transcript are shared."""
        with self._lock:
            session = self._sessions.get(data["id"])
            if session is None:
                session = self._sessions[data["id"]] = Session(self, data)
                return session
        session._update(data)
        return session

    # -- streams ----------------------------------------------------------------------------

    def _new_stream(
        self, session_id: str, transcript: Transcript, on_session: Callable[[dict[str, Any]], None], emit: Emit
    ) -> SessionStream:
        if self._closed:
            raise RuntimeError("the client is closed")
        ws_base = "ws" + self.url[len("http") :] if self.url.startswith("http") else self.url
        return SessionStream(
            self._loop, f"{ws_base}cloudws/api/sessions/{quote(session_id, safe='')}/ws", self._http.headers,
            transcript, on_session, emit, max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s,
            ping_interval_s=self.ping_interval_s, open_timeout_s=min(self.timeout_s, 10.0),
            ssl_context=self._ssl_context, use_env_proxy=self._trust_env,
        )  # fmt: skip

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """End every stream and the thread they run on, and the HTTP connections."""
        self._closed = True
        self._loop.close()
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<cloudws.Client {self.url} ({self.how})>"


def connect(url: str | None = None, token: str | None = None, **options: Any) -> Client:
    """A Client for the server this kernel belongs to (see ``discovery.find_server`` for the
    order of places looked at); ``options`` go to :class:`Client`."""
    server = find_server(url, token)
    return Client(server.url, server.token, how=server.how, **options)
