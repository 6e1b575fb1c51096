"""Attacks on the daemon's git token by the agent, which runs as the daemon's uid and writes the
work tree: each against a real token-protected git host, the real broker and gitops' own calls."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cloudws_sandbox import gitops
from cloudws_sandbox.credentials import Credential, CredentialBroker
from jupyter_cloudws.testing.git_http import GIT_IDENTITY, GitHttpServer

TOKEN = "ghp_attackTestToken0123456789abcdefAB"
AUTHOR = gitops.Author("Claude Code", "claude@example.invalid")
BRANCH = "cloudws/session"
RUNTIME_PACKAGE = Path(gitops.__file__).resolve().parent


@pytest.fixture
def host(tmp_path: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "host", token=TOKEN) as server:
        yield server


@contextlib.asynccontextmanager
async def broker_for(host: GitHttpServer, tmp_path: Path) -> AsyncIterator[CredentialBroker]:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    broker = CredentialBroker(state / "git-credential.sock")
    await broker.start()
    broker.set(Credential("http", f"127.0.0.1:{host.port}", "x-access-token", TOKEN))
    try:
        yield broker
    finally:
        await broker.close()


def upstream_of(url: str, tmp_path: Path) -> gitops.Upstream:
    """Where the daemon fetches and pushes: the session's URL, from its own bare git dir."""
    return gitops.Upstream(url, str(tmp_path / "state" / "net.git"))


def remote_sha(host: GitHttpServer, name: str, ref: str) -> str:
    out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", ref], cwd=host.path_for(name),
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip()


def hide(work: Path, name: str) -> None:
    """What the agent plants it keeps out of ``git status`` and so out of the commit."""
    with (work / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(f"/{name}\n")


async def commit_something(work: Path) -> str:
    (work / "change.txt").write_text("the agent's work\n")
    assert await gitops.commit_all(str(work), "work", AUTHOR)
    return await gitops.head_sha(str(work))


# -- 1. modules planted where the helper runs -----------------------------------------------------

# Imported in place of the real module, it records that it ran and tees what the helper prints
# (the password) to the marker, then hands over to the real module so git carries on unaware.
SHADOW = '''
import importlib, os, sys
MARKER = {marker!r}
with open(MARKER, "a") as f:
    f.write("imported into " + repr(sys.argv) + "\\n")
class Tee:
    def __init__(self, inner):
        self.inner = inner
    def write(self, text):
        with open(MARKER, "a") as f:
            f.write(text)
        return self.inner.write(text)
    def __getattr__(self, name):
        return getattr(self.inner, name)
sys.stdout = Tee(sys.stdout)
'''
SHADOW_MODULE = SHADOW + '''
here = os.path.dirname(os.path.abspath(__file__))
del sys.modules[__name__]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
sys.modules[__name__] = importlib.import_module(__name__)
'''
SHADOW_PACKAGE = SHADOW + "__path__[:] = [{real!r}]\n"


@pytest.mark.parametrize("planted", ["json.py", "socket.py", "cloudws_sandbox"])
async def test_a_module_planted_at_the_work_tree_top_is_not_imported_by_the_helper(host, tmp_path, planted):
    url = host.make_remote("private")
    marker = tmp_path / "stolen.txt"
    async with broker_for(host, tmp_path) as broker:
        work = tmp_path / "work"
        await gitops.clone(url, str(work), broker)
        if planted == "cloudws_sandbox":
            (work / planted).mkdir()
            (work / planted / "__init__.py").write_text(SHADOW_PACKAGE.format(marker=str(marker),
                                                                              real=str(RUNTIME_PACKAGE)))  # fmt: skip
        else:
            (work / planted).write_text(SHADOW_MODULE.format(marker=str(marker)))
        hide(work, planted)
        sha = await commit_something(work)
        await gitops.push(str(work), BRANCH, upstream_of(url, tmp_path), broker)
    assert remote_sha(host, "private", f"refs/heads/{BRANCH}") == sha, "the push must still land"
    assert not marker.exists(), marker.read_text()


# -- 2. the work tree's git config -------------------------------------------------------------


class RecordingProxy:
    """An HTTP proxy on loopback that forwards nothing: it records every request's credentials
    and answers 401 with a Basic challenge, so a git that uses it asks its helper and retries."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _refuse(self) -> None:
                proxy.requests.append({"method": self.command, "target": self.path,
                                       "authorization": self.headers.get("Authorization", ""),
                                       "proxy_authorization": self.headers.get("Proxy-Authorization", "")})  # fmt: skip
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = b"who are you?\n"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="proxy"')
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            do_GET = do_POST = do_CONNECT = _refuse

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def passwords(self) -> list[str]:
        """Every password a request carried, decoded."""
        found = []
        for request in self.requests:
            for header in (request["authorization"], request["proxy_authorization"]):
                scheme, _, value = header.partition(" ")
                if scheme.lower() == "basic":
                    found.append(base64.b64decode(value).decode(errors="replace").partition(":")[2])
                elif header:
                    found.append(value)
        return found

    def __enter__(self) -> RecordingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def configure(work: Path, *args: str) -> None:
    subprocess.run(["git", "config", *args], cwd=work, check=True)


@pytest.mark.parametrize("where", ["work tree", "global", "daemon's fetch dir", "a commondir in the fetch dir"])
async def test_a_proxy_in_the_agents_git_config_gets_no_token_from_the_push(host, tmp_path, monkeypatch, where):
    url = host.make_remote("private")
    async with broker_for(host, tmp_path) as broker:
        work = tmp_path / "work"
        await gitops.clone(url, str(work), broker)
        with RecordingProxy() as proxy:
            if where == "global":  # the agent, of the daemon's uid, writes its ~/.gitconfig too
                home = tmp_path / "home"
                home.mkdir()
                (home / ".gitconfig").write_text(f"[http]\n\tproxy = {proxy.url}\n")
                monkeypatch.setenv("HOME", str(home))
                monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
            elif where == "daemon's fetch dir":  # written between two of the daemon's calls
                await gitops.fetch(str(work), upstream_of(url, tmp_path), broker)
                with (tmp_path / "state" / "net.git" / "config").open("a") as config:
                    config.write(f"[http]\n\tproxy = {proxy.url}\n")
            elif where == "a commondir in the fetch dir":  # git reads the config of the dir it names
                await gitops.fetch(str(work), upstream_of(url, tmp_path), broker)
                evil = tmp_path / "evil"
                subprocess.run(["git", "init", "--quiet", "--bare", str(evil)], check=True)
                (evil / "config").write_text(f"[core]\n\tbare = true\n[http]\n\tproxy = {proxy.url}\n")
                (tmp_path / "state" / "net.git" / "commondir").write_text(str(evil) + "\n")
            else:
                configure(work, "http.proxy", proxy.url)
            sha = await commit_something(work)
            failure = None
            try:
                await gitops.push(str(work), BRANCH, upstream_of(url, tmp_path), broker)
            except gitops.GitError as exc:
                failure = exc
        assert TOKEN not in proxy.passwords(), proxy.requests
        assert proxy.requests == []
        assert failure is None
    assert remote_sha(host, "private", f"refs/heads/{BRANCH}") == sha


async def test_a_proxy_in_the_work_trees_config_gets_no_token_from_the_fetch(host, tmp_path):
    url = host.make_remote("private")
    async with broker_for(host, tmp_path) as broker:
        work = tmp_path / "work"
        await gitops.clone(url, str(work), broker)
        new_sha = push_to_host(host, "private", "later")
        with RecordingProxy() as proxy:
            configure(work, "http.proxy", proxy.url)
            failure = None
            try:
                await gitops.fetch(str(work), upstream_of(url, tmp_path), broker)
            except gitops.GitError as exc:
                failure = exc
        assert TOKEN not in proxy.passwords(), proxy.requests
        assert proxy.requests == []
        assert failure is None
    assert await gitops.git("rev-parse", "refs/remotes/origin/later", cwd=str(work)) == new_sha


@pytest.mark.parametrize("key", ["remote.origin.pushurl", "remote.origin.url"])
async def test_origin_pointed_at_another_repository_gets_nothing_from_the_push(host, tmp_path, key):
    url = host.make_remote("private")
    other = host.make_remote("other")  # the agent's own repository on the same host
    async with broker_for(host, tmp_path) as broker:
        work = tmp_path / "work"
        await gitops.clone(url, str(work), broker)
        configure(work, key, other)
        sha = await commit_something(work)
        await gitops.push(str(work), BRANCH, upstream_of(url, tmp_path), broker)
    assert [r for r in host.requests if r["path"].startswith("/other.git")] == []
    assert remote_sha(host, "other", f"refs/heads/{BRANCH}") == ""
    assert remote_sha(host, "private", f"refs/heads/{BRANCH}") == sha


async def test_origin_pointed_at_another_repository_is_not_what_a_fetch_reads(host, tmp_path):
    url = host.make_remote("private")
    other = host.make_remote("other")
    async with broker_for(host, tmp_path) as broker:
        work = tmp_path / "work"
        await gitops.clone(url, str(work), broker)
        configure(work, "remote.origin.url", other)
        new_sha = push_to_host(host, "private", "later")
        await gitops.fetch(str(work), upstream_of(url, tmp_path), broker)
    assert [r for r in host.requests if r["path"].startswith("/other.git")] == []
    assert await gitops.git("rev-parse", "refs/remotes/origin/later", cwd=str(work)) == new_sha


def push_to_host(host: GitHttpServer, name: str, branch: str) -> str:
    """A new commit on ``branch`` of the served repository, made behind git's back; its sha."""
    bare = host.path_for(name)
    env = {**os.environ, **GIT_IDENTITY}
    tree = subprocess.run(["git", "rev-parse", "main^{tree}"], cwd=bare, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    sha = subprocess.run(["git", "commit-tree", "-p", "main", "-m", "later", tree], cwd=bare, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    subprocess.run(["git", "update-ref", f"refs/heads/{branch}", sha], cwd=bare, check=True)
    return sha
