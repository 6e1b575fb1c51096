"""The hub's mirrors of session repositories, against a real git host on loopback that requires
a token: the token reaches git through the credential helper and nowhere else."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from support import git

from jupyter_cloudws.github import GitHub
from jupyter_cloudws.review.mirror import MirrorError, Mirrors
from jupyter_cloudws.testing.git_http import GitHttpServer

TOKEN = "ghp_reviewMirrorSecret0123456789abcdef"


@pytest.fixture
def host(tmp_path: Path):
    with GitHttpServer(tmp_path / "host", token=TOKEN) as server:
        yield server


def mirrors(tmp_path: Path, host: GitHttpServer, token: str = TOKEN) -> Mirrors:
    return Mirrors(tmp_path / "mirrors", GitHub(url=host.url, api_url=host.url, token=token))


class ArgvWatch:
    """Reads every process's command line (and a git's environment), over and over, while a fetch runs (no sleeps: it
    looks as often as it can until told to stop)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.seen_git = False
        self.leaks: list[str] = []
        self.environ_leaks: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                self.seen_git = self.seen_git or argv.startswith("git ") and "127.0.0.1" in argv
                if TOKEN in argv:
                    self.leaks.append(argv)
                if argv.startswith("git "):
                    try:
                        if TOKEN.encode() in (cmdline.parent / "environ").read_bytes():
                            self.environ_leaks.append(argv)
                    except OSError:
                        pass

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join()


async def test_a_private_repository_is_fetched_with_the_token_which_stays_out_of_sight(tmp_path, host):
    url = host.make_remote("private", {"README.md": "# secret plans\n"})
    m = mirrors(tmp_path, host)
    with ArgvWatch() as watch:
        path = await m.sync(url, ["main", "cloudws/not-pushed-yet"])
    assert git("--git-dir", str(path), "rev-parse", "refs/remotes/origin/main") == git(
        "--git-dir", str(host.path_for("private")), "rev-parse", "main"
    )
    assert await m.default_branch(url) == "main"
    assert watch.seen_git and watch.leaks == [], "the token was in a command line"
    for file in (tmp_path / "mirrors").rglob("*"):
        if file.is_file():
            assert TOKEN.encode() not in file.read_bytes(), f"the token is in {file}"
    # Nor in the environment of any git call: the helper reads it from a pipe only git holds.
    assert watch.environ_leaks == [], "the token was in a git process's environment"
    assert not any(TOKEN in v for v in m.remote_env(url).values())
    assert any(r.get("user") and r["status"] == 200 for r in host.requests)


async def test_without_the_token_the_fetch_fails_clearly(tmp_path, host):
    url = host.make_remote("private")
    with pytest.raises(MirrorError) as info:
        await mirrors(tmp_path, host, token="").sync(url, ["main"])
    assert "could not ls-remote the repository" in str(info.value)


async def test_a_wrong_token_is_refused_and_never_echoed(tmp_path, host):
    url = host.make_remote("private")
    wrong = "ghp_wrongWrongWrong"
    m = mirrors(tmp_path, host, token=wrong)
    m._redact = lambda text: text.replace(wrong, "***")
    with pytest.raises(MirrorError) as info:
        await m.sync(url, ["main"])
    assert wrong not in str(info.value)


async def test_the_token_goes_only_to_its_own_host(tmp_path, host):
    # A repository on another host (here: the same server under another name) gets no credential.
    with GitHttpServer(tmp_path / "elsewhere", token=TOKEN) as other:
        url = other.make_remote("theirs")
        assert not any("credential." in v for v in mirrors(tmp_path, host).remote_env(url).values())
        with pytest.raises(MirrorError):
            await mirrors(tmp_path, host).sync(url, ["main"])


async def test_concurrent_requests_fetch_once(tmp_path, host):
    url = host.make_remote("busy")
    m = mirrors(tmp_path, host)
    await asyncio.gather(*(m.sync(url, ["main"]) for _ in range(4)))
    # Each git that talks to the host starts with one answered GET of info/refs: here one
    # ls-remote and one fetch; the three requests that waited found the branch there.
    starts = [r for r in host.requests if r["path"].endswith("/info/refs") and r["status"] == 200]
    assert len(starts) == 2, host.requests
    assert len(m._locks) == 0, "the repository's lock goes once no sync holds or awaits it"
