"""Find the Jupyter server (with jupyter_cloudws) that a kernel belongs to.

Order: explicit arguments; ``CLOUDWS_URL``/``CLOUDWS_TOKEN``; JupyterHub's variables, which a
single-user server passes on to its kernels; the servers Jupyter records in its runtime dir,
the one whose ``root_dir`` holds the kernel's cwd first. Each candidate must answer
``GET {url}cloudws/api/status`` with its token, so a stale record or a server without the
extension is skipped, and the error says why for each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from .errors import ServerNotFound

STATUS_PATH = "cloudws/api/status"
FIX_HINT = (
    "Fix: pass the server's address, e.g. jupyter_cloudws.client.connect(url='http://127.0.0.1:8888/', "
    "token='...'), or set CLOUDWS_URL and CLOUDWS_TOKEN in the kernel's environment."
)
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}  # a bind address, not one to connect to


@dataclass(frozen=True)
class ServerInfo:
    """Where the server is: ``url`` is its base URL ending in ``/`` (prefix included)."""

    url: str
    token: str
    how: str  # where it was found, for people

    def __repr__(self) -> str:  # never show the token
        return f"ServerInfo(url={self.url!r}, how={self.how!r})"


@dataclass(frozen=True)
class _Candidate:
    where: str  # where it came from, for the error message
    url: str
    token: str


def normalize_url(url: str) -> str:
    """The base URL with a trailing ``/``; a bind-all host becomes 127.0.0.1."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL such as http://127.0.0.1:8888/")
    host = parts.hostname or ""
    if host in _ANY_ADDRESS or parts.netloc.startswith(":"):
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def check_server(url: str, token: str, timeout_s: float = 2.0) -> str | None:
    """None when ``url`` runs jupyter_cloudws and takes ``token``; else why not, in a few words."""
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        response = httpx.get(url + STATUS_PATH, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        return f"no answer within {timeout_s:g} s"
    except httpx.HTTPError as exc:
        return f"not reachable ({type(exc).__name__}: {exc})"
    if response.status_code in (401, 403):
        return f"HTTP {response.status_code}: the token was rejected, or it lacks access"
    if response.status_code == 404:
        return "HTTP 404: a Jupyter server without the jupyter_cloudws extension"
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "version" not in body:
        return "answered, but not with jupyter_cloudws's status"
    return None


def find_server(
    url: str | None = None,
    token: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout_s: float = 2.0,
) -> ServerInfo:
    """The first server that answers; raises :class:`ServerNotFound` listing what was tried.

    An explicit ``url`` is the only candidate: falling back to another server would be a
    surprise. ``env`` and ``cwd`` default to the process's own (tests pass their own).
    """
    env = os.environ if env is None else env
    cwd = Path(os.getcwd() if cwd is None else cwd)
    tried: list[tuple[str, str]] = []
    for candidate in _candidates(url, token, env, cwd, tried):
        problem = check_server(candidate.url, candidate.token, timeout_s)
        if problem is None:
            return ServerInfo(candidate.url, candidate.token, candidate.where)
        tried.append((f"{candidate.where} ({candidate.url})", problem))
    raise ServerNotFound(tried, FIX_HINT)


def _candidates(
    url: str | None, token: str | None, env: Mapping[str, str], cwd: Path, tried: list[tuple[str, str]]
) -> Iterator[_Candidate]:
    """Every place to try, in order. Places with nothing to offer are noted in ``tried``."""
    if url:
        base = normalize_url(url)
        yield _Candidate("the url argument", base, token if token is not None else _known_token(base, env))
        return
    env_url = env.get("CLOUDWS_URL", "").strip()
    if env_url:
        try:
            yield _Candidate("CLOUDWS_URL", normalize_url(env_url), token or env.get("CLOUDWS_TOKEN", ""))
        except ValueError as exc:
            tried.append(("CLOUDWS_URL", str(exc)))
    else:
        tried.append(("CLOUDWS_URL", "not set"))
    hub_url = env.get("JUPYTERHUB_SERVICE_URL", "").strip()
    if hub_url:
        try:
            yield _Candidate(
                "JUPYTERHUB_SERVICE_URL", normalize_url(hub_url), token or env.get("JUPYTERHUB_API_TOKEN", "")
            )
        except ValueError as exc:
            tried.append(("JUPYTERHUB_SERVICE_URL", str(exc)))
    else:
        tried.append(("JupyterHub (JUPYTERHUB_SERVICE_URL)", "not set"))
    yield from _running_servers(token, cwd, tried)


def _known_token(url: str, env: Mapping[str, str]) -> str:
    """A token for a URL given without one: CLOUDWS_TOKEN, else the token Jupyter recorded for a
    running server at that URL (a kernel's own server, named by hand)."""
    if env.get("CLOUDWS_TOKEN"):
        return env["CLOUDWS_TOKEN"]
    from jupyter_server.serverapp import list_running_servers

    for info in list_running_servers():
        try:
            if normalize_url(str(info.get("url", ""))) == url:
                return str(info.get("token") or "")
        except ValueError:
            continue
    return ""


def _running_servers(token: str | None, cwd: Path, tried: list[tuple[str, str]]) -> Iterator[_Candidate]:
    # Imported here: jupyter_server is heavy, and the other places need none of it.
    from jupyter_core.paths import jupyter_runtime_dir
    from jupyter_server.serverapp import list_running_servers

    runtime_dir = jupyter_runtime_dir()
    try:
        servers = list(list_running_servers(runtime_dir))
    except OSError as exc:
        tried.append((f"running servers in {runtime_dir}", f"could not read: {exc}"))
        return
    if not servers:
        tried.append((f"running servers in {runtime_dir}", "none recorded"))
        return
    for info in sorted(servers, key=lambda i: _root_match_len(i, cwd), reverse=True):
        where = f"running server pid {info.get('pid')} in {runtime_dir}"
        if info.get("sock"):
            tried.append((where, f"listens on a unix socket ({info['sock']}), which this client cannot use"))
            continue
        try:
            yield _Candidate(where, normalize_url(str(info.get("url", ""))), token or str(info.get("token") or ""))
        except ValueError as exc:
            tried.append((where, str(exc)))


def _root_match_len(info: dict[str, Any], cwd: Path) -> int:
    """How well a server fits the kernel: the length of its root_dir when that holds cwd, else -1
    (such servers still come, last: a kernel may run elsewhere than its server's root)."""
    root = info.get("root_dir") or info.get("notebook_dir")
    if not root:
        return -1
    try:
        root_path = Path(root).resolve()
        cwd.resolve().relative_to(root_path)
    except (ValueError, OSError):
        return -1
    return len(str(root_path))
