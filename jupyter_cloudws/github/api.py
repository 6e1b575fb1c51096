"""The few GitHub REST calls the hub makes: repositories, branches, pull requests.

An async client over httpx. Each call is bounded by ``c.GitHub.request_timeout_s``; lists follow
GitHub's ``Link`` pagination up to :data:`MAX_PAGES`, and only to the API's own origin (the
token is never sent anywhere else). A host's refusal becomes a :class:`GitHubError` whose
``status`` and ``code`` are what the hub answers its own client with, and whose message is a
sentence a person can act on. The token never appears in one: it is only ever a header.
"""

from __future__ import annotations

import asyncio
import re
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from .settings import GitHub

API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_PAGES = 10  # 1,000 repositories or branches: a picker needs no more
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
_MAX_MESSAGE_CHARS = 500


class GitHubError(Exception):
    """A GitHub call that failed. ``status`` is the HTTP status the hub answers with, ``code`` its
    error code; ``upstream_status`` the git host's own status (None when it never answered)."""

    def __init__(self, status: int, code: str, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.upstream_status = upstream_status


def _host(api_url: str) -> str:
    return urlsplit(api_url).netloc


def _error_details(body: Any) -> tuple[str, list[str]]:
    """GitHub's ``message`` and the messages (or codes) of its ``errors`` list."""
    if not isinstance(body, dict):
        return "", []
    message = body.get("message") if isinstance(body.get("message"), str) else ""
    details = []
    for item in body.get("errors") or []:
        if isinstance(item, dict):
            if isinstance(item.get("message"), str):
                details.append(item["message"])
            elif item.get("field"):
                details.append(f"{item.get('field')} is {item.get('code', 'invalid')}")
        elif isinstance(item, str):
            details.append(item)
    return message, details


def error_for(response: httpx.Response, token: str, api_url: str) -> GitHubError:
    """The sentence for a refusal from the host."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message, details = _error_details(body)
    said = "; ".join(details) or message or response.reason_phrase
    said = said.replace(token, "***") if token else said
    said = said[:_MAX_MESSAGE_CHARS]
    status, host = response.status_code, _host(api_url)
    upstream = {"upstream_status": status}
    remaining = response.headers.get("x-ratelimit-remaining")
    if status == 429 or (status == 403 and (remaining == "0" or "rate limit" in said.lower())):
        return GitHubError(429, "github_rate_limited", f"GitHub's rate limit for this token is used up ({said}); "
                           "try again later", **upstream)  # fmt: skip
    if status == 401:
        return GitHubError(403, "github_bad_token", f"{host} refused the token (c.GitHub.token or GITHUB_TOKEN): it "
                           f"is wrong, expired or revoked ({said})", **upstream)  # fmt: skip
    if status == 403:
        return GitHubError(403, "github_forbidden", f"the token may not do this on {host} ({said}); it needs "
                           "read and write access to the repository's contents and pull requests", **upstream)  # fmt: skip
    if status == 404:
        return GitHubError(404, "github_not_found", f"{host} knows no such repository or pull request, or the "
                           f"token may not see it ({said})", **upstream)  # fmt: skip
    if status == 422:
        lowered = said.lower()
        if "no commits between" in lowered:
            return GitHubError(422, "no_commits", f"there is nothing to propose: {said}", **upstream)
        if "protect" in lowered or "rule" in lowered:
            return GitHubError(422, "branch_protection", f"the base branch's protection refuses this: {said}", **upstream)
        if "already exists" in lowered:
            return GitHubError(409, "pull_request_exists", said, **upstream)
        return GitHubError(422, "github_validation", f"GitHub refused the request: {said}", **upstream)
    if status >= 500:
        return GitHubError(502, "github_error", f"{host} failed ({status}: {said}); try again later", **upstream)
    return GitHubError(502, "github_error", f"{host} answered {status}: {said}", **upstream)


class GitHubClient:
    """``async with GitHubClient(settings) as gh: await gh.list_repos()``."""

    def __init__(self, settings: GitHub, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not settings.token:
            raise GitHubError(400, "github_no_token", "no GitHub token is configured: set c.GitHub.token or the "
                              "server's GITHUB_TOKEN environment variable, then restart the server")  # fmt: skip
        self.settings = settings
        self._timeout_s = settings.request_timeout_s
        self._client = httpx.AsyncClient(
            base_url=settings.api_url + "/", timeout=self._timeout_s, transport=transport, follow_redirects=False,
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                     "Authorization": f"Bearer {settings.token}", "User-Agent": "jupyter-cloudws"},
        )  # fmt: skip

    async def __aenter__(self) -> GitHubClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._client.aclose()

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        host = _host(self.settings.api_url)
        try:
            # httpx's timeout bounds each read; this bounds the whole call.
            response = await asyncio.wait_for(self._client.request(method, url, **kwargs), self._timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise GitHubError(504, "github_timeout", f"{host} did not answer within {self._timeout_s:g} s "
                              "(c.GitHub.request_timeout_s)") from None  # fmt: skip
        except httpx.HTTPError as exc:
            raise GitHubError(502, "github_unreachable", f"cannot reach {host} (c.GitHub.api_url): "
                              f"{type(exc).__name__}: {exc}") from None  # fmt: skip
        if response.status_code >= 400 or response.status_code in (301, 302, 307, 308):
            raise error_for(response, self.settings.token, self.settings.api_url)
        return response

    def _malformed(self, path: str, what: str) -> GitHubError:
        return GitHubError(502, "github_bad_answer", f"the git host ({_host(self.settings.api_url)}) answered {path} "
                           f"with something that is not {what}")  # fmt: skip

    def _decoded(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
            raise self._malformed(path, "JSON") from None

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The answer to one call, which must be a JSON object."""
        body = self._decoded(await self._request(method, path.lstrip("/"), **kwargs), path)
        if not isinstance(body, dict):
            raise self._malformed(path, "a JSON object")
        return body

    async def _pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item of a listed resource, following ``rel="next"`` up to MAX_PAGES pages."""
        items: list[dict[str, Any]] = []
        origin = urlsplit(self.settings.api_url)
        url: str | None = path.lstrip("/")
        query: dict[str, Any] | None = {"per_page": PER_PAGE, **params}
        for _ in range(MAX_PAGES):
            assert url is not None
            response = await self._request("GET", url, params=query)
            page = self._decoded(response, path)
            if not isinstance(page, list) or not all(isinstance(item, dict) for item in page):
                raise self._malformed(path, "a JSON list of objects")
            items += page
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            if match is None:
                break
            following = urlsplit(match.group(1))
            if (following.scheme, following.netloc) != (origin.scheme, origin.netloc):
                break  # never hand the token to another host
            url, query = match.group(1), None
        return items

    def _pull(self, pull: dict[str, Any], path: str) -> dict[str, Any]:
        """A pull request as the hub reads it, or the host's answer is refused (it would be stored)."""
        number, state = pull.get("number"), pull.get("state")
        refs_ok = all(isinstance(pull.get(k), (dict, type(None))) for k in ("base", "head"))
        texts_ok = all(isinstance(pull.get(k), (str, type(None))) for k in ("html_url", "title"))
        if isinstance(number, bool) or not isinstance(number, int) or number < 1 or state not in ("open", "closed"):
            raise self._malformed(path, "a pull request (no number or state)")
        if not refs_ok or not texts_ok:
            raise self._malformed(path, "a pull request (a malformed base, head, url or title)")
        return pull

    # -- calls ----------------------------------------------------------------------------------

    async def list_repos(self) -> list[dict[str, Any]]:
        """The repositories the token's user can reach, most recently pushed first."""
        return await self._pages("user/repos", {"sort": "pushed", "direction": "desc"})

    async def get_repo(self, owner: str, repo: str) -> dict[str, Any]:
        return await self._json("GET", f"repos/{_seg(owner)}/{_seg(repo)}")

    async def list_branches(self, owner: str, repo: str) -> list[dict[str, Any]]:
        return await self._pages(f"repos/{_seg(owner)}/{_seg(repo)}/branches", {})

    async def find_pulls(self, owner: str, repo: str, branch: str, *, state: str = "all") -> list[dict[str, Any]]:
        """Pull requests from ``owner:branch``, newest first."""
        path = f"repos/{_seg(owner)}/{_seg(repo)}/pulls"
        pulls = await self._pages(path, {"head": f"{owner}:{branch}", "state": state, "direction": "desc"})
        return [self._pull(pull, path) for pull in pulls]

    async def get_pull(self, owner: str, repo: str, number: int) -> dict[str, Any]:
        path = f"repos/{_seg(owner)}/{_seg(repo)}/pulls/{int(number)}"
        return self._pull(await self._json("GET", path), path)

    async def create_pull(self, owner: str, repo: str, *, title: str, head: str, base: str, body: str,
                          draft: bool) -> dict[str, Any]:  # fmt: skip
        payload = {"title": title, "head": head, "base": base, "body": body, "draft": draft}
        path = f"repos/{_seg(owner)}/{_seg(repo)}/pulls"
        return self._pull(await self._json("POST", path, json=payload), path)


def _seg(part: str) -> str:
    """One path segment, so a name can never reach another route."""
    return quote(part, safe="")


def pull_state(pull: dict[str, Any]) -> str:
    """draft, open, merged or closed, from a pull request (full or as listed)."""
    if pull.get("merged_at") or pull.get("merged"):
        return "merged"
    if pull.get("state") == "closed":
        return "closed"
    return "draft" if pull.get("draft") else "open"
