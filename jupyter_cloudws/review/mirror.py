"""Bare mirrors of session repositories on the hub, from which changes are diffed.

One bare repository per repository URL under ``data_dir/mirrors/``, named by a hash of the URL.
It holds only what review needs: origin's base and session branches, as
``refs/remotes/origin/NAME``, fetched on demand (one fetch at a time per repository) and not
at all when the commits asked for are already there.

The content is untrusted (an agent wrote it): the mirror has no work tree, no hooks (made with
an empty template, and ``core.hooksPath`` pointed at nothing), and diffs run with the user's
global and system git config left out, so no diff driver or filter of theirs runs on it.

A repository on the configured git host gets the token through a credential helper whose
program text holds no secret: it copies out a pipe the hub fills and hands to that one git call
(its number in ``CLOUDWS_GIT_CREDENTIAL_FD``). The token is in no argument list, no environment,
no file, no git config, no log.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from cloudws_sandbox.credentials import config_env
from cloudws_sandbox.gitops import redact

from ..github import GitCredential, GitHub

log = logging.getLogger("jupyter_cloudws.review")

FETCH_TIMEOUT_S = 300.0
LOCAL_TIMEOUT_S = 60.0
# The helper answers only "get"; git feeds it the request on stdin, which it ignores: the hub
# gives git a credential only for the host that credential belongs to (credential.<url>.helper).
_HELPER = '!f() { test "$1" = get || return 0; cat "/dev/fd/$CLOUDWS_GIT_CREDENTIAL_FD"; }; f'
CREDENTIAL_FD_ENV = "CLOUDWS_GIT_CREDENTIAL_FD"
# Transports a session's repository may use (the hub checks the URL; this is the second line).
_ALLOWED_PROTOCOLS = "https:http:ssh:git:file"


class MirrorError(RuntimeError):
    """git could not reach or read the repository; the message is redacted."""


class GitFailed(RuntimeError):
    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(stderr)
        self.returncode = returncode


# For git commands that read the mirror only: nothing from the user's or the system's config.
LOCAL_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    **config_env([("core.hooksPath", os.devnull), ("core.quotePath", "false"), ("diff.renameLimit", "3000")]),
}


async def run_git(
    git_dir: Path, *args: str, env: dict[str, str] | None = None, input_bytes: bytes | None = None,
    timeout_s: float = LOCAL_TIMEOUT_S, check: bool = True, credential: GitCredential | None = None,
) -> bytes:  # fmt: skip
    """Run git on ``git_dir`` and return its stdout; :class:`GitFailed` on a non-zero exit.
    A ``credential`` goes to git's helper through a pipe only this git call holds."""
    full_env = {**os.environ, **(env if env is not None else LOCAL_ENV), "GIT_DIR": str(git_dir)}
    pass_fds: tuple[int, ...] = ()
    if credential is not None:
        answer = f"username={credential.username}\npassword={credential.password}\n".encode()
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, answer)  # far below a pipe's buffer: never blocks
        finally:
            os.close(write_fd)
        pass_fds = (read_fd,)
        full_env[CREDENTIAL_FD_ENV] = str(read_fd)
    try:
        proc = await asyncio.create_subprocess_exec(
            "git", *args, env=full_env, cwd=str(git_dir if git_dir.is_dir() else git_dir.parent),
            stdin=asyncio.subprocess.PIPE if input_bytes is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, pass_fds=pass_fds,
        )  # fmt: skip
    finally:
        for fd in pass_fds:
            os.close(fd)  # git has its copy
    try:
        out, err = await asyncio.wait_for(proc.communicate(input_bytes), timeout_s)
    except asyncio.TimeoutError:
        os.kill(proc.pid, signal.SIGKILL)  # not proc.kill(): see changes._patches
        await proc.wait()
        raise GitFailed(-1, f"git {args[0]} took longer than {timeout_s:.0f} s") from None
    if check and proc.returncode != 0:
        raise GitFailed(proc.returncode or 1, err.decode(errors="replace").strip())
    return out


class Mirrors:
    def __init__(self, root: Path, github: GitHub, redact_text: Callable[[str], str] = lambda s: s) -> None:
        self.root = root
        self.github = github
        self._redact = redact_text
        # A lock lives while a sync holds or awaits it (their frames hold it), then goes: one per
        # repository ever reviewed would otherwise stay for the server's life.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def path_for(self, repo: str) -> Path:
        return self.root / (hashlib.sha256(repo.encode()).hexdigest()[:32] + ".git")

    def _lock(self, repo: str) -> asyncio.Lock:
        lock = self._locks.get(repo)
        if lock is None:
            lock = self._locks[repo] = asyncio.Lock()
        return lock

    def remote_env(self, repo: str) -> dict[str, str]:
        """The environment of a git child that talks to ``repo``: no prompts, the user's own git
        config (their SSH and URL settings), and for the git host's repositories only the token,
        through the helper, with every other credential helper reset."""
        env = {
            "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
            "GIT_ALLOW_PROTOCOL": _ALLOWED_PROTOCOLS,
        }  # fmt: skip
        if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
            env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
        pairs = [("core.hooksPath", os.devnull)]
        credential = self.github.credential_for(repo)
        if credential is not None:
            pairs += [("credential.helper", ""),
                      (f"credential.{credential.protocol}://{credential.host}.helper", _HELPER)]  # fmt: skip
        return {**env, **config_env(pairs)}

    async def _init(self, repo: str) -> Path:
        path = self.path_for(repo)
        if not (path / "HEAD").exists():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            # An empty template: no sample hooks, no description, nothing git did not need.
            await run_git(path, "init", "--quiet", "--bare", "--template=", str(path))
        return path

    async def has(self, path: Path, names: Sequence[str]) -> list[bool]:
        """Whether each of ``names`` (a commit id or a ref) names a commit in the mirror; one git call."""
        if not names:
            return []
        out = await run_git(path, "cat-file", "--batch-check=%(objecttype)",
                            input_bytes="".join(f"{n}^{{commit}}\n" for n in names).encode())  # fmt: skip
        return [line == "commit" for line in out.decode(errors="replace").splitlines()]

    async def sync(self, repo: str, branches: Sequence[str], want: Sequence[str] = ()) -> Path:
        """The mirror of ``repo``, holding origin's ``branches`` as ``refs/remotes/origin/NAME``
        (those that exist there) and, if origin has them, the commits ``want``. Fetches only when
        a branch or a wanted commit is missing; one fetch at a time per repository."""
        async with self._lock(repo):
            path = await self._init(repo)
            refs = [f"refs/remotes/origin/{b}" for b in branches]
            if all(await self.has(path, [*want, *refs])):
                return path
            await self._fetch(repo, path, branches)
            return path

    async def default_branch(self, repo: str) -> str | None:
        """origin's default branch (remembered in the mirror as ``refs/remotes/origin/HEAD``),
        or None for a repository with no branch."""
        async with self._lock(repo):
            path = await self._init(repo)
            out = await run_git(path, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", check=False)
            ref = out.decode(errors="replace").strip()
            if ref.startswith("refs/remotes/origin/"):
                return ref.removeprefix("refs/remotes/origin/")
            heads = await self._ls_remote(repo, path, [])
            return heads.get("HEAD")

    async def _ls_remote(self, repo: str, path: Path, branches: Sequence[str]) -> dict[str, str]:
        """origin's branches among ``branches`` that exist (name -> sha), and ``"HEAD"`` -> the
        default branch's name; the default is remembered in the mirror."""
        patterns = ["HEAD", *(f"refs/heads/{b}" for b in branches)]
        out = await self._remote_git(repo, path, "ls-remote", "--symref", "--", repo, *patterns)
        found: dict[str, str] = {}
        for line in out.decode(errors="replace").splitlines():
            left, _, name = line.partition("\t")
            if left.startswith("ref: ") and name == "HEAD":
                target = left.removeprefix("ref: ")
                if target.startswith("refs/heads/"):
                    found["HEAD"] = target.removeprefix("refs/heads/")
                    await run_git(path, "symbolic-ref", "refs/remotes/origin/HEAD",
                                  "refs/remotes/origin/" + found["HEAD"])  # fmt: skip
            elif name.startswith("refs/heads/") and name.removeprefix("refs/heads/") in branches:
                found[name.removeprefix("refs/heads/")] = left
        return found

    async def _fetch(self, repo: str, path: Path, branches: Sequence[str]) -> None:
        present = await self._ls_remote(repo, path, branches)
        specs = [f"+refs/heads/{b}:refs/remotes/origin/{b}" for b in branches if b in present]
        if specs:
            await self._remote_git(repo, path, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                                   "--", repo, *specs)  # fmt: skip

    async def _remote_git(self, repo: str, path: Path, *args: str) -> bytes:
        try:
            return await run_git(path, *args, env=self.remote_env(repo), timeout_s=FETCH_TIMEOUT_S,
                                 credential=self.github.credential_for(repo))  # fmt: skip
        except GitFailed as exc:
            message = self._redact(redact(str(exc)))
            log.warning("review mirror: git %s of %s failed: %s", args[0], self._redact(redact(repo)), message)
            raise MirrorError(f"could not {args[0]} the repository: {message}") from None
