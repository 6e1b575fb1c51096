"""Attacks on the daemon's git token by the agent, which runs as the daemon's uid and writes the
work tree: each against a real token-protected git host, the real broker and gitops' own calls."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloudws_sandbox import gitops
from cloudws_sandbox.credentials import Credential, CredentialBroker
from jupyter_cloudws.testing.git_http import GitHttpServer

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
        await gitops.push(str(work), BRANCH, broker)
    assert remote_sha(host, "private", f"refs/heads/{BRANCH}") == sha, "the push must still land"
    assert not marker.exists(), marker.read_text()
