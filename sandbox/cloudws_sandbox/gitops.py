"""Git as the sandbox uses it: clone, put the session branch in place, commit and push.

Credentials never appear here: the network calls (clone, fetch, push) take an ``auth``, the
daemon's :class:`~cloudws_sandbox.credentials.CredentialBroker`, whose helper gives git the token
for that one call, so clone URLs, error messages and events stay clean.

The agent writes the work tree's ``.git/config``, so no call that carries the token reads it
(its ``http.proxy`` would receive the ``Authorization`` header, its ``remote.origin.url`` or
``pushurl`` the push). Fetch and push run in a bare git dir of the daemon's (:class:`Upstream`:
its config rewritten before each call, the work tree's objects as its alternate, so a push
copies nothing), to the session's repository URL as the hub configured it, never ``origin``;
with no system or global config and no hooks. A fetch lands there and is then fetched into
the work tree locally, with no credential. Only the clone, before any agent exists, runs in
the work tree, with the same isolation from the system and global config.

Every value that comes from a user (repository, branch names) is put where git cannot read it
as an option: after ``--``, or as the argument of an option that takes one. The hub refuses such values too; this is the
second line.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .credentials import CredentialMissing, config_env
from .protocol import MAX_GIT_EVENT_FILES, MAX_GIT_PATH_CHARS, branch_name_problem

if TYPE_CHECKING:
    from .credentials import CredentialBroker, Ticket

GIT_TIMEOUT_S = 300.0
# Every call that carries the token: no system or global config (the agent, of the same uid,
# writes ~/.gitconfig too), no hooks.
AUTH_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
AUTH_CONFIG = [("core.hooksPath", os.devnull)]
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


class GitError(RuntimeError):
    pass


def redact(text: str) -> str:
    """Drop ``user:token@`` from any URL in ``text``."""
    return _URL_CREDENTIALS.sub(r"\1", text)


@dataclass(frozen=True)
class Author:
    name: str
    email: str

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


async def git(*args: str, cwd: str, env: dict[str, str] | None = None, check: bool = True,
              config: list[tuple[str, str]] | None = None, auth: CredentialBroker | None = None) -> str:
    out = await git_bytes(*args, cwd=cwd, env=env, check=check, config=config, auth=auth)
    return out.decode(errors="replace").strip()


async def git_bytes(*args: str, cwd: str, env: dict[str, str] | None = None, check: bool = True,
                    config: list[tuple[str, str]] | None = None, auth: CredentialBroker | None = None) -> bytes:
    """git's output as it wrote it: for ``-z`` output, whose paths need not be UTF-8. ``config``
    entries go in through ``GIT_CONFIG_*`` (they reach child processes too, and outrank the
    repository's config). A call that reaches the network passes ``auth``."""
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    for name in ("GIT_ASKPASS", "SSH_ASKPASS"):  # a login prompt would run them beside the helper
        full_env.pop(name, None)
    entries = list(config or [])
    if auth is None:
        return await _run_git(args, cwd, full_env, entries, check, None)
    try:
        await auth.ready()
    except CredentialMissing as exc:
        raise GitError(f"git {args[0]} did not run: {exc}") from None
    with auth.call() as ticket:
        auth_entries, auth_env = auth.env(ticket)
        return await _run_git(args, cwd, {**full_env, **AUTH_ENV, **auth_env}, AUTH_CONFIG + auth_entries + entries,
                              check, ticket)  # fmt: skip


async def _run_git(args: tuple[str, ...], cwd: str, env: dict[str, str], entries: list[tuple[str, str]],
                   check: bool, ticket: Ticket | None) -> bytes:  # fmt: skip
    if entries:
        env = {**env, **config_env(entries)}
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    if ticket is not None:
        ticket.set_pid(proc.pid)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), GIT_TIMEOUT_S)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:.0f} s") from None
    if check and proc.returncode != 0:
        stderr = err.decode(errors="replace").strip()
        # git's own words for a refused login ("could not read Username") say nothing of why.
        reason = ticket.explain(stderr) if ticket is not None else None
        raise GitError(redact(f"git {args[0]} failed: {reason or stderr}"))
    return out


async def clone(repo: str, dest: str, auth: CredentialBroker | None = None) -> None:
    parent = os.path.dirname(dest) or "."
    os.makedirs(parent, exist_ok=True)
    await git("clone", "--no-recurse-submodules", "--", repo, dest, cwd=parent, auth=auth)


async def default_branch(cwd: str) -> str:
    ref = await git("symbolic-ref", "--quiet", "--", "refs/remotes/origin/HEAD", cwd=cwd, check=False)
    if ref.startswith("refs/remotes/origin/"):
        return ref.removeprefix("refs/remotes/origin/")
    current = await git("symbolic-ref", "--quiet", "--short", "--", "HEAD", cwd=cwd, check=False)
    return current or "main"


async def remote_branch_exists(cwd: str, branch: str) -> bool:
    # show-ref, not rev-parse: rev-parse's "--" introduces paths, and only newer gits know its
    # --end-of-options.
    out = await git("show-ref", "--verify", "--", f"refs/remotes/origin/{branch}", cwd=cwd, check=False)
    return bool(out)


async def prepare_branch(cwd: str, base_branch: str, branch: str) -> str:
    """Check out ``branch``: from origin when an earlier sandbox pushed it (so a fresh sandbox
    continues the session's work), else new from ``base_branch``. Returns the base used."""
    base = base_branch or await default_branch(cwd)
    for name in (base, branch):
        problem = branch_name_problem(name)
        if problem:
            raise GitError(f"{name!r} is not a branch name: {problem}")
    # The new branch is -B's own argument, never read as an option; the trailing "--" makes the
    # start point a commit, never a path.
    if await remote_branch_exists(cwd, branch):
        await git("checkout", "-B", branch, f"origin/{branch}", "--", cwd=cwd)
    elif await remote_branch_exists(cwd, base):
        await git("checkout", "-B", branch, f"origin/{base}", "--", cwd=cwd)
    elif await head_sha(cwd):
        raise GitError(f"base branch {base!r} does not exist in the repository")
    else:
        await git("checkout", "--orphan", branch, "--", cwd=cwd)  # an empty repository
    return base


class Upstream:
    """The session's repository as the daemon's fetch and push reach it: ``url``, as the hub
    configured it, from ``net_dir``, a bare git dir of the daemon's (outside the work tree)."""

    def __init__(self, url: str, net_dir: str) -> None:
        self.url = url
        self.net_dir = net_dir
        self._object_format = ""
        self._config_text = ""  # kept here, not read back from a file the agent could reach

    async def prepare(self, cwd: str) -> str:
        """``net_dir`` made afresh for a call about the work tree at ``cwd``: whatever was put
        in it since (a config, a ``commondir`` naming another config, refs) is gone, and no ref
        can name an object the work tree has since dropped (a fetch negotiates from the work
        tree's refs, a push needs none). Returns it."""
        net = self.net_dir
        if not self._config_text:
            # Older gits echo an option they do not know: only the two formats are believed.
            found = await git("rev-parse", "--show-object-format", cwd=cwd, check=False)
            self._object_format = found if found in ("sha1", "sha256") else "sha1"
            self._config_text = _net_config(self._object_format)
        if os.path.islink(net):
            os.unlink(net)
        shutil.rmtree(net, ignore_errors=True)
        os.makedirs(os.path.dirname(net) or ".", exist_ok=True)
        formats = [] if self._object_format == "sha1" else [f"--object-format={self._object_format}"]
        # No template: no hooks, no sample files.
        await git("init", "--quiet", "--bare", "--template=", *formats, "--", net,
                  cwd=os.path.dirname(net) or ".", env=AUTH_ENV)  # fmt: skip
        _write(os.path.join(net, "config"), self._config_text)
        _write(os.path.join(net, "HEAD"), "ref: refs/heads/main\n")
        objects = await git("rev-parse", "--git-path", "objects", cwd=cwd)
        _write(os.path.join(net, "objects", "info", "alternates"), os.path.join(os.path.abspath(cwd), objects) + "\n")
        return net

    def env(self) -> dict[str, str]:
        """The environment of a git call in ``net_dir``: the directory named outright, so that
        no file in it (a ``commondir``) can send git to read another's config."""
        return {**AUTH_ENV, "GIT_DIR": self.net_dir, "GIT_COMMON_DIR": self.net_dir}

    def __repr__(self) -> str:
        return f"Upstream({redact(self.url)!r}, {self.net_dir!r})"


def _net_config(object_format: str) -> str:
    # No housekeeping: nothing there is kept for long (the work tree holds what was fetched).
    quiet = "[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n"
    if object_format == "sha1":
        return "[core]\n\trepositoryformatversion = 0\n\tbare = true\n" + quiet
    return (f"[core]\n\trepositoryformatversion = 1\n\tbare = true\n[extensions]\n\tobjectformat = {object_format}\n"
            + quiet)  # fmt: skip


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = f"{path}.{os.getpid()}.tmp"
    with open(temp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temp, path)  # never a half-written config for git to read


async def fetch(cwd: str, upstream: Upstream, auth: CredentialBroker | None = None) -> None:
    """Bring origin's branches (``refs/remotes/origin/*``) up to date from the session's
    repository; local branches are left as they are."""
    net = await upstream.prepare(cwd)
    await git("fetch", "--quiet", "--no-tags", "--", upstream.url, "+refs/heads/*:refs/remotes/origin/*", cwd=net,
              env=upstream.env(), config=AUTH_CONFIG, auth=auth)  # fmt: skip
    # A local fetch, with nothing to authenticate: the work tree's config may do as it likes.
    await git("fetch", "--quiet", "--no-tags", "--", net, "+refs/remotes/origin/*:refs/remotes/origin/*", cwd=cwd)


async def local_branch_exists(cwd: str, branch: str) -> bool:
    out = await git("show-ref", "--verify", "--", f"refs/heads/{branch}", cwd=cwd, check=False)
    return bool(out)


async def current_branch(cwd: str) -> str:
    """The checked-out branch's name, or ``""`` on a detached HEAD."""
    return await git("symbolic-ref", "--quiet", "--short", "--", "HEAD", cwd=cwd, check=False)


async def checkout_base(cwd: str, base_branch: str) -> str:
    """Check out ``base_branch`` (default: origin's default branch) as origin has it, as a
    repository image holds it. Returns the branch."""
    base = base_branch or await default_branch(cwd)
    problem = branch_name_problem(base)
    if problem:
        raise GitError(f"{base!r} is not a branch name: {problem}")
    if await remote_branch_exists(cwd, base):
        await git("checkout", "-B", base, f"origin/{base}", "--", cwd=cwd)
    elif await head_sha(cwd):
        raise GitError(f"base branch {base!r} does not exist in the repository")
    return base


async def restore_branch(cwd: str, base_branch: str, branch: str) -> str:
    """Put the session branch in place in a work tree that came from an image: kept as it is
    when it already exists locally (never reset: it may hold commits origin lacks), else as
    :func:`prepare_branch` makes it. Returns where it came from."""
    problem = branch_name_problem(branch)
    if problem:
        raise GitError(f"{branch!r} is not a branch name: {problem}")
    if await local_branch_exists(cwd, branch):
        if await current_branch(cwd) != branch:
            # The agent left the branch with edits of its own: keep them in a stash, not in the way.
            await git("stash", "push", "--include-untracked", "--quiet", "-m", "cloudws: left on another branch",
                      cwd=cwd, check=False)  # fmt: skip
            await git("checkout", branch, "--", cwd=cwd)
        if await remote_branch_exists(cwd, branch):
            # An older image than the last push (its snapshot failed): catch up, or every later
            # push would be refused. A branch that diverged is kept as it is.
            await git("merge", "--ff-only", "--quiet", f"refs/remotes/origin/{branch}", cwd=cwd, check=False)
        return branch
    return "origin/" + await prepare_branch(cwd, base_branch, branch)


async def head_sha(cwd: str) -> str:
    return await git("rev-parse", "--verify", "--quiet", "HEAD", cwd=cwd, check=False)  # a constant: no "--" needed


# git's one-letter statuses (``--raw``) as the protocol names them; unmerged or unknown ones
# cannot occur between two commits, and read as modified if they ever do.
FILE_STATUSES = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied", "T": "type_changed"}
# Options for every diff of untrusted commits: no external diff program, no textconv filter.
SAFE_DIFF_OPTIONS = ("--no-ext-diff", "--no-textconv", "--no-color", "-M")


@dataclass(frozen=True)
class FileChange:
    """One changed file between two commits, as ``git diff --raw --numstat -z`` tells it."""

    path: str
    old_path: str | None  # where a renamed or copied file came from
    status: str  # a value of FILE_STATUSES
    additions: int | None  # None: a binary file
    deletions: int | None
    old_blob: str
    new_blob: str

    @property
    def binary(self) -> bool:
        return self.additions is None

    def event_entry(self) -> dict[str, object]:
        entry: dict[str, object] = {"path": self.path, "status": self.status,
                                    "additions": self.additions, "deletions": self.deletions}  # fmt: skip
        if self.old_path is not None:
            entry["old_path"] = self.old_path
        return entry


def parse_raw_numstat(out: bytes) -> list[FileChange]:
    r"""The output of ``git diff --raw --numstat -z --no-abbrev``: every raw record (``:modes
    blobs STATUS\0path\0``, two paths for a rename or copy), then a numstat record per file in
    the same order (``adds\tdels\tpath\0``, or ``adds\tdels\t\0old\0new\0``; ``-`` for a binary
    file's counts). Paths are taken as bytes git wrote, decoded leniently."""
    tokens = out.split(b"\0")
    pos = 0
    raw: list[tuple[str, str, str, str | None, str]] = []  # status, old blob, new blob, old path, path
    while pos < len(tokens) and tokens[pos].startswith(b":"):
        meta = tokens[pos].decode("ascii", errors="replace").split()
        letter = meta[4][:1] if len(meta) >= 5 else "M"
        if letter in ("R", "C"):
            old, new = tokens[pos + 1], tokens[pos + 2]
            raw.append((letter, meta[2], meta[3], _path(old), _path(new)))
            pos += 3
        else:
            raw.append((letter, meta[2], meta[3], None, _path(tokens[pos + 1])))
            pos += 2
    changes: list[FileChange] = []
    for letter, old_blob, new_blob, old_path, path in raw:
        counts = tokens[pos].split(b"\t", 2) if pos < len(tokens) else [b"-", b"-", b""]
        pos += 3 if counts[-1] == b"" else 1  # an empty path: the rename's two paths follow
        additions = deletions = None
        if counts[0] != b"-" and len(counts) >= 2:
            additions, deletions = int(counts[0]), int(counts[1])
        changes.append(FileChange(path, old_path, FILE_STATUSES.get(letter, "modified"), additions, deletions,
                                  old_blob, new_blob))  # fmt: skip
    return changes


def _path(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


async def changed_files(cwd: str, before: str, after: str) -> tuple[list[dict[str, object]], int]:
    """The files changed from ``before`` (empty: a repository with no commit) to ``after``, as
    the ``git`` event lists them (at most MAX_GIT_EVENT_FILES), and how many there are."""
    if not after or before == after:
        return [], 0
    out = await git_bytes("diff", "--raw", "--numstat", "-z", "--no-abbrev", *SAFE_DIFF_OPTIONS,
                          before or await empty_tree(cwd), after, "--", cwd=cwd)  # fmt: skip
    changes = parse_raw_numstat(out)
    # A path longer than the protocol allows (none a file system makes) is counted, not listed:
    # the hub would refuse the whole event for it.
    fits = [c for c in changes if len(c.path) <= MAX_GIT_PATH_CHARS and len(c.old_path or "") <= MAX_GIT_PATH_CHARS]
    return [c.event_entry() for c in fits[:MAX_GIT_EVENT_FILES]], len(changes)


async def empty_tree(cwd: str) -> str:
    """The id of the empty tree in this repository's hash (SHA-1 or SHA-256)."""
    return await git("hash-object", "-t", "tree", "--stdin", cwd=cwd)


async def commit_all(cwd: str, message: str, author: Author) -> bool:
    """Stage everything and commit; False when there was nothing to commit."""
    await git("add", "--all", "--", cwd=cwd)
    status = await git("status", "--porcelain", cwd=cwd)
    if not status:
        return False
    await git("commit", "--quiet", "--no-verify", "-m", message, cwd=cwd, env=author.env())
    return True


# A local origin is pushed to by a receive-pack running in the sandbox, which may write only the
# origin's objects and session refs: no reflog (a repository with a work tree logs by default),
# no housekeeping. git clears GIT_CONFIG_* for a local transport's receive-pack, so the settings
# go on its command line, and only for a local origin: a server's receive-pack is its own.
PUSH_CONFIG = {"core.logAllRefUpdates": "false", "receive.autogc": "false"}
LOCAL_RECEIVE_PACK = "git " + " ".join(f"-c {key}={value}" for key, value in PUSH_CONFIG.items()) + " receive-pack"


def is_local_url(url: str) -> bool:
    return url.startswith("/") or url.startswith("file://")


async def push(cwd: str, branch: str, upstream: Upstream, auth: CredentialBroker | None = None) -> None:
    """Push the work tree's HEAD to ``branch`` of the session's repository, and note it in
    ``refs/remotes/origin/BRANCH`` as a push to origin would."""
    sha = await git("rev-parse", "--verify", "HEAD^{commit}", cwd=cwd)
    net = await upstream.prepare(cwd)
    local = [f"--receive-pack={LOCAL_RECEIVE_PACK}"] if is_local_url(upstream.url) else []
    await git("push", "--quiet", *local, "--", upstream.url, f"{sha}:refs/heads/{branch}", cwd=net,
              env=upstream.env(), config=AUTH_CONFIG, auth=auth)  # fmt: skip
    await git("update-ref", "-m", "cloudws: pushed", f"refs/remotes/origin/{branch}", sha, cwd=cwd, check=False)


def commit_message(prompt: str, session_id: str, max_subject_chars: int = 72) -> str:
    """A subject that summarizes the prompt, the prompt itself as the body, and a trailer."""
    first_line = next((line.strip() for line in prompt.splitlines() if line.strip()), "Claude Code changes")
    subject = first_line if len(first_line) <= max_subject_chars else first_line[: max_subject_chars - 1] + "…"
    body = prompt.strip()
    if len(body) > 4000:
        body = body[:4000] + "\n…"
    return f"{subject}\n\n{body}\n\nCloudws-Session: {session_id}\n"


def pull_request_commit_message(session_id: str) -> str:
    """For work a prompt left uncommitted (its commit failed), committed when a pull request asked for a push."""
    return ("Commit work left uncommitted, for a pull request\n\n"
            "These changes were in the work tree but in no commit when a pull request was asked for.\n\n"
            f"Cloudws-Session: {session_id}\n")  # fmt: skip
