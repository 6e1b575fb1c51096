"""A fake GitHub REST API on 127.0.0.1, held to GitHub's published contract.

It serves the repositories of a :class:`~.git_http.GitHttpServer`, so branches and their heads
are whatever git really has. Every answer is built from the operation's example in GitHub's
OpenAPI description (``github_contract.py``) with the real values filled in, and validated
against the operation's response schema before it is sent; every request body is validated
against the operation's request schema. A violation on either side is recorded in ``errors``
(a test asserts it is empty) and answered with 500 (a wrong answer) or 422 (a wrong request)::

    with GitHttpServer(tmp / "git") as git, FakeGitHub(git) as github:
        git.make_remote("octo-user/project")
        github.add_repo("octo-user/project", private=True)
        # c.GitHub.url = git.url, c.GitHub.api_url = github.url, c.GitHub.token = github.token

Operations: ``GET /user/repos``, ``GET /repos/{o}/{r}``, ``GET /repos/{o}/{r}/branches``,
``GET|POST /repos/{o}/{r}/pulls``, ``GET /repos/{o}/{r}/pulls/{n}``, with GitHub's pagination
(``per_page``, ``page``, ``Link``). Every request needs ``Authorization: Bearer|token TOKEN``.
Controls: :meth:`add_repo` (private, pushed_at), :meth:`set_pushed_at`, :meth:`protect_branch`,
:meth:`deny_push`, :meth:`merge_pull`, :meth:`close_pull`, :meth:`revoke_token`,
:meth:`exhaust_rate_limit`; ``tamper[operation_id]`` may change an answer before it is checked
(to prove the check bites); a tamper that returns :class:`Broken` sends its body unchecked, as a
git host that breaks the contract would (bytes as they are, anything else as JSON).

What it cannot show: GitHub's real branch protection restricts merging, not opening a pull
request; here a protected base refuses new pull requests with 422 (as a ruleset restricting pull
requests into it does), the nearest refusal the REST calls this project makes can meet. Merging
changes the pull request's state only, not the base branch.
"""

from __future__ import annotations

import hmac
import itertools
import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .git_http import GitHttpServer
from .github_contract import Contract, ContractError, default_contract
from .loopback import LoopbackHTTPServer

DEFAULT_TOKEN = "ghp_fakeGitHubTokenForTests0123456789"
DEFAULT_USER = "octo-user"
DOCS_URL = "https://docs.github.com/rest"
MAX_PER_PAGE = 100


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class FakeRepo:
    full_name: str
    id: int
    private: bool = False
    description: str | None = None
    pushed_at: float = field(default_factory=time.time)
    created_at: float = field(default_factory=time.time)
    can_push: bool = True
    protected: set[str] = field(default_factory=set)

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]


@dataclass
class FakePull:
    full_name: str
    number: int
    id: int
    title: str
    body: str | None
    head: str
    base: str
    head_sha: str
    base_sha: str
    draft: bool
    user: str
    state: str = "open"
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    closed_at: float | None = None
    merged_at: float | None = None


@dataclass(frozen=True)
class Broken:
    """An answer sent as it is, past the contract check: ``bytes`` raw, anything else as JSON."""

    body: Any


class ApiError(Exception):
    """An error answer, with GitHub's body: ``message``, ``documentation_url`` (and ``status``)."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "documentation_url": DOCS_URL}
        if errors is not None:
            self.body["errors"] = errors
        else:
            self.body["status"] = str(status)
        self.headers = headers or {}


class FakeGitHub:
    def __init__(self, git: GitHttpServer, *, token: str | None = None, user: str = DEFAULT_USER,
                 contract: Contract | None = None) -> None:  # fmt: skip
        self.git = git
        # One token for both, as on GitHub: the git server's when it requires one.
        self.token = token or git.token or DEFAULT_TOKEN
        self.user = user
        self.contract = contract if contract is not None else default_contract()
        self.repos: dict[str, FakeRepo] = {}
        self.pulls: list[FakePull] = []
        self.requests: list[dict[str, Any]] = []  # method, path, query, auth scheme, body, status
        self.errors: list[str] = []  # contract violations, by this fake's answers or by a client
        self.tamper: dict[str, Callable[[Any], Any]] = {}
        self.rate_limited = False
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        self._server: LoopbackHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        self._server = LoopbackHTTPServer(_make_handler(self), "fake-github")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API's base URL (``c.GitHub.api_url``), without a trailing slash."""
        if self._server is None:
            raise RuntimeError("the fake GitHub is not running")
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def web_url(self) -> str:
        """The web and git address (``c.GitHub.url``): the git server's."""
        return self.git.url

    # -- test controls --------------------------------------------------------------------------

    def add_repo(self, full_name: str, *, private: bool = False, description: str | None = None,
                 pushed_at: float | None = None) -> FakeRepo:  # fmt: skip
        """Serve the git server's ``full_name`` (``OWNER/NAME``, made with ``git.make_remote``)."""
        if not self.git.path_for(full_name).is_dir():
            raise FileNotFoundError(f"the git server has no repository {full_name!r}: make_remote it first")
        repo = FakeRepo(full_name, next(self._ids), private, description)
        if pushed_at is not None:
            repo.pushed_at = pushed_at
        with self._lock:
            self.repos[full_name] = repo
        return repo

    def set_private(self, full_name: str, private: bool = True) -> None:
        self.repos[full_name].private = private

    def set_pushed_at(self, full_name: str, ts: float) -> None:
        self.repos[full_name].pushed_at = ts

    def protect_branch(self, full_name: str, branch: str) -> None:
        self.repos[full_name].protected.add(branch)

    def deny_push(self, full_name: str) -> None:
        """The token may read the repository but not write to it (nor open pull requests)."""
        self.repos[full_name].can_push = False

    def revoke_token(self) -> None:
        self.token = "revoked-" + self.token

    def exhaust_rate_limit(self, exhausted: bool = True) -> None:
        self.rate_limited = exhausted

    def pull(self, full_name: str, number: int) -> FakePull:
        for pull in self.pulls:
            if pull.full_name == full_name and pull.number == number:
                return pull
        raise KeyError((full_name, number))

    def merge_pull(self, full_name: str, number: int) -> None:
        pull = self.pull(full_name, number)
        pull.state, pull.merged_at = "closed", time.time()
        pull.closed_at = pull.updated_at = pull.merged_at

    def close_pull(self, full_name: str, number: int) -> None:
        pull = self.pull(full_name, number)
        pull.state, pull.closed_at = "closed", time.time()
        pull.updated_at = pull.closed_at

    # -- git, as the git server has it ----------------------------------------------------------

    def _git(self, repo: FakeRepo, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=self.git.path_for(repo.full_name), capture_output=True,
                              text=True, check=check)  # fmt: skip

    def branches(self, repo: FakeRepo) -> dict[str, str]:
        out = self._git(repo, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads").stdout
        return dict(line.split(" ", 1) for line in out.splitlines())

    def default_branch(self, repo: FakeRepo) -> str:
        return self._git(repo, "symbolic-ref", "--short", "HEAD").stdout.strip()

    # -- answers, from the contract's examples --------------------------------------------------

    def _fill_urls(self, example: Any, full_name: str, number: int | None = None) -> Any:
        text = json.dumps(example)
        text = text.replace("https://api.github.com/repos/octocat/Hello-World", f"{self.url}/repos/{full_name}")
        text = text.replace("https://github.com/octocat/Hello-World", f"{self.web_url}/{full_name}")
        text = text.replace("https://api.github.com", self.url).replace("https://github.com", self.web_url)
        if number is not None:
            text = text.replace("/1347", f"/{number}")
        return json.loads(text)

    def _user(self, example: dict[str, Any], login: str) -> dict[str, Any]:
        user = json.loads(json.dumps(example).replace("/users/octocat", f"/users/{login}"))
        user.update(login=login, id=1, type="User", site_admin=False, html_url=f"{self.web_url}/{login}")
        return user

    def repo_answer(self, repo: FakeRepo, operation_id: str = "repos/list-for-authenticated-user") -> dict[str, Any]:
        example = self.contract.example(operation_id)
        answer = self._fill_urls(example[0] if isinstance(example, list) else example, repo.full_name)
        for key in ("organization", "parent", "source", "template_repository"):  # a plain, unforked repository
            answer.pop(key, None)
        answer.update(
            id=repo.id, node_id=f"R_{repo.id}", name=repo.name, full_name=repo.full_name,
            owner=self._user(answer["owner"], repo.owner), private=repo.private,
            visibility="private" if repo.private else "public", description=repo.description, fork=False,
            default_branch=self.default_branch(repo), language=None, archived=False, disabled=False,
            pushed_at=_iso(repo.pushed_at), created_at=_iso(repo.created_at), updated_at=_iso(repo.pushed_at),
            clone_url=self.git.url_for(repo.full_name), html_url=f"{self.web_url}/{repo.full_name}",
            git_url=self.git.url_for(repo.full_name), svn_url=f"{self.web_url}/{repo.full_name}",
            ssh_url=f"git@127.0.0.1:{repo.full_name}.git",
            permissions={"admin": False, "maintain": False, "push": repo.can_push, "triage": True, "pull": True},
        )  # fmt: skip
        return answer

    def branch_answer(self, repo: FakeRepo, name: str, sha: str) -> dict[str, Any]:
        answer = self._fill_urls(self.contract.example("repos/list-branches")[0], repo.full_name)
        protected = name in repo.protected
        answer.update(
            name=name, commit={"sha": sha, "url": f"{self.url}/repos/{repo.full_name}/commits/{sha}"},
            protected=protected, protection_url=f"{self.url}/repos/{repo.full_name}/branches/{name}/protection",
            protection={"enabled": protected, "required_status_checks": {
                "enforcement_level": "non_admins" if protected else "off", "contexts": [], "checks": []}},
        )  # fmt: skip
        return answer

    def pull_answer(self, pull: FakePull, operation_id: str) -> dict[str, Any]:
        repo = self.repos[pull.full_name]
        example = self.contract.example(operation_id)
        answer = self._fill_urls(example[0] if isinstance(example, list) else example, pull.full_name, pull.number)
        user = self._user(answer["user"], pull.user)
        repo_answer = self.repo_answer(repo)
        merged = pull.merged_at is not None
        sides = {}
        for side, ref, sha in (("head", pull.head, pull.head_sha), ("base", pull.base, pull.base_sha)):
            sides[side] = {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha, "user": user, "repo": repo_answer}
        answer.update(
            id=pull.id, node_id=f"PR_{pull.id}", number=pull.number, state=pull.state, title=pull.title,
            body=pull.body, draft=pull.draft, user=user, labels=[], milestone=None, assignee=None, assignees=[],
            requested_reviewers=[], requested_teams=[], auto_merge=None, active_lock_reason=None, locked=False,
            author_association="OWNER", created_at=_iso(pull.created_at), updated_at=_iso(pull.updated_at),
            closed_at=_iso(pull.closed_at) if pull.closed_at else None,
            merged_at=_iso(pull.merged_at) if merged else None, merge_commit_sha=pull.head_sha if merged else None,
            **sides,
        )  # fmt: skip
        if "merged" in answer:  # the full pull request, not the list's simple one
            answer.update(merged=merged, merged_by=user if merged else None, mergeable=None if merged else True,
                          rebaseable=None if merged else True, mergeable_state="unknown" if merged else "clean",
                          comments=0, review_comments=0, maintainer_can_modify=False)  # fmt: skip
        return answer

    # -- operations -----------------------------------------------------------------------------

    def _repo(self, owner: str, name: str) -> FakeRepo:
        repo = self.repos.get(f"{owner}/{name}")
        if repo is None:
            raise ApiError(404, "Not Found")
        return repo

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[str, int, Any, dict[str, str]]:
        """(operation id, status, answer, extra headers) for one authorized request."""
        parts = path.strip("/").split("/")
        if method == "GET" and parts == ["user", "repos"]:
            repos = sorted(self.repos.values(), key=lambda r: r.full_name.lower())
            sort = query.get("sort", "full_name")
            if sort in ("pushed", "updated", "created"):
                repos.sort(key=lambda r: r.created_at if sort == "created" else r.pushed_at)
            if query.get("direction", "asc" if sort == "full_name" else "desc") == "desc":
                repos.reverse()
            page, headers = self._page(path, query, repos)
            return "repos/list-for-authenticated-user", 200, [self.repo_answer(r) for r in page], headers
        if len(parts) < 3 or parts[0] != "repos":
            raise ApiError(404, "Not Found")
        repo = self._repo(parts[1], parts[2])
        rest = parts[3:]
        if method == "GET" and not rest:
            return "repos/get", 200, self.repo_answer(repo, "repos/get"), {}
        if method == "GET" and rest == ["branches"]:
            branches = sorted(self.branches(repo).items())
            if "protected" in query:
                branches = [b for b in branches if (b[0] in repo.protected) == (query["protected"] == "true")]
            page, headers = self._page(path, query, branches)
            return "repos/list-branches", 200, [self.branch_answer(repo, n, s) for n, s in page], headers
        if rest == ["pulls"] and method == "GET":
            pulls = [p for p in self.pulls if p.full_name == repo.full_name]
            state = query.get("state", "open")
            if state != "all":
                pulls = [p for p in pulls if p.state == state]
            if "head" in query:
                pulls = [p for p in pulls if f"{repo.owner}:{p.head}" == query["head"]]
            if "base" in query:
                pulls = [p for p in pulls if p.base == query["base"]]
            pulls.sort(key=lambda p: p.number, reverse=query.get("direction", "desc") == "desc")
            page, headers = self._page(path, query, pulls)
            return "pulls/list", 200, [self.pull_answer(p, "pulls/list") for p in page], headers
        if rest == ["pulls"] and method == "POST":
            pull = self._create_pull(repo, body)
            location = {"Location": f"{self.url}/repos/{repo.full_name}/pulls/{pull.number}"}
            return "pulls/create", 201, self.pull_answer(pull, "pulls/create"), location
        if method == "GET" and len(rest) == 2 and rest[0] == "pulls" and rest[1].isdigit():
            try:
                pull = self.pull(repo.full_name, int(rest[1]))
            except KeyError:
                raise ApiError(404, "Not Found") from None
            return "pulls/get", 200, self.pull_answer(pull, "pulls/get"), {}
        raise ApiError(404, "Not Found")

    def _create_pull(self, repo: FakeRepo, body: Any) -> FakePull:
        try:
            self.contract.check_request("pulls/create", body)
        except ContractError as exc:
            self.errors.append(f"request: {exc}")
            raise ApiError(422, f"Invalid request.\n\n{exc}") from None
        if not repo.can_push:
            raise ApiError(403, "Resource not accessible by personal access token")
        for name in ("title", "head", "base"):
            if not body.get(name):
                raise ApiError(422, "Validation Failed", [{"resource": "PullRequest", "field": name, "code": "missing_field"}])
        branches = self.branches(repo)
        owner, _, head = body["head"].rpartition(":")
        base = body["base"]
        if owner not in ("", repo.owner) or head not in branches:
            raise ApiError(422, "Validation Failed", [{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        if base not in branches:
            raise ApiError(422, "Validation Failed", [{"resource": "PullRequest", "field": "base", "code": "invalid"}])
        if base in repo.protected:
            raise ApiError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom", "field": "base",
                           "message": f"Pull requests into the protected branch '{base}' are restricted by branch protection rules"}])  # fmt: skip
        for pull in self.pulls:
            if pull.full_name == repo.full_name and pull.state == "open" and (pull.head, pull.base) == (head, base):
                raise ApiError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                               "message": f"A pull request already exists for {repo.owner}:{head}."}])  # fmt: skip
        if self._git(repo, "merge-base", "--is-ancestor", branches[head], branches[base], check=False).returncode == 0:
            raise ApiError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                           "message": f"No commits between {base} and {head}"}])  # fmt: skip
        with self._lock:
            number = 1 + max((p.number for p in self.pulls if p.full_name == repo.full_name), default=0)
            pull = FakePull(repo.full_name, number, next(self._ids), body["title"], body.get("body"), head, base,
                            branches[head], branches[base], bool(body.get("draft", False)), self.user)  # fmt: skip
            self.pulls.append(pull)
        return pull

    def _page(self, path: str, query: dict[str, str], items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        try:
            per_page = min(max(int(query.get("per_page", 30)), 1), MAX_PER_PAGE)
            page = max(int(query.get("page", 1)), 1)
        except ValueError:
            raise ApiError(422, "Validation Failed", [{"resource": "Search", "field": "per_page", "code": "invalid"}]) from None
        last = max(1, -(-len(items) // per_page))
        links = []
        # GitHub's: prev and first from page 2 on, next and last up to the page before the last.
        for rel, number, shown in (("prev", page - 1, page > 1), ("next", page + 1, page < last),
                                   ("last", last, page < last), ("first", 1, page > 1)):  # fmt: skip
            if shown:
                links.append(f'<{self.url}{path}?{urlencode({**query, "page": number})}>; rel="{rel}"')
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    def check_auth(self, header: str | None) -> None:
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not value.strip():
            raise ApiError(401, "Requires authentication")
        if not hmac.compare_digest(value.strip().encode(), self.token.encode()):
            raise ApiError(401, "Bad credentials")
        if self.rate_limited:
            reset = str(int(time.time()) + 3600)
            raise ApiError(403, "API rate limit exceeded for user ID 1.",
                           headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})  # fmt: skip


def _operation_for(method: str, path: str) -> str:
    """The operation an error answer belongs to, for its schema (unknown: basic-error's)."""
    parts = path.strip("/").split("/")
    if parts == ["user", "repos"]:
        return "repos/list-for-authenticated-user"
    rest = parts[3:]
    if rest == ["pulls"]:
        return "pulls/create" if method == "POST" else "pulls/list"
    if rest == ["branches"]:
        return "repos/list-branches"
    return "pulls/get" if rest[:1] == ["pulls"] else "repos/get"


def _make_handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # recorded in fake.requests instead
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            auth = self.headers.get("Authorization") or ""
            entry: dict[str, Any] = {"method": self.command, "path": url.path, "query": query,
                                     "auth_scheme": auth.partition(" ")[0], "accept": self.headers.get("Accept"),
                                     "api_version": self.headers.get("X-GitHub-Api-Version")}  # fmt: skip
            operation = _operation_for(self.command, url.path)
            headers: dict[str, str] = {}
            try:
                body = json.loads(raw) if raw else None
                entry["body"] = body
                fake.check_auth(auth)
                with fake._lock:
                    operation, status, answer, headers = fake.handle(self.command, url.path, query, body)
            except ApiError as exc:
                status, answer, headers = exc.status, exc.body, exc.headers
            except ValueError:
                status, answer = 400, {"message": "Problems parsing JSON", "documentation_url": DOCS_URL}
            if operation in fake.tamper:
                answer = fake.tamper[operation](answer)
            if isinstance(answer, Broken):
                data = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
            else:
                try:
                    fake.contract.check_response(operation, status, answer)
                except ContractError as exc:
                    fake.errors.append(f"answer: {exc}")
                    status, answer = 500, {"message": f"the fake GitHub broke its contract: {exc}", "documentation_url": DOCS_URL}
                data = json.dumps(answer).encode()
            entry["status"] = status
            with fake._lock:
                fake.requests.append(entry)
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json; charset=utf-8",
                                "Content-Length": str(len(data))}.items():  # fmt: skip
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler
