"""Bring a session's branch home: fetch it into the local clone the notebook lives in and, if
asked, switch to it, without ever overwriting anything of the user's.

The decisions (is this clone the session's repository? would the switch touch uncommitted work?
may the local branch move?) are pure functions over what git reported, tested without git; the
I/O is a few git commands, argv lists only, ``--`` before values that came from elsewhere.

Nothing is forced: the local branch only ever fast-forwards (``update-ref`` with the old value,
so a concurrent change makes it fail rather than lose a commit), and the switch itself runs
``git switch``/``git merge --ff-only`` with ``--no-overwrite-ignore``, which refuse on their own
to overwrite untracked or ignored files, as a second line behind the checks here.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["CheckoutRefused", "CheckoutResult", "checkout", "normalize_repo_url"]

FETCH_TIMEOUT_S = 600.0
LOCAL_GIT_TIMEOUT_S = 60.0
_SHOWN_PATHS = 10


class CheckoutRefused(RuntimeError):
    """The branch was not brought home; nothing was changed. ``reason`` is one of
    ``not_a_clone``, ``other_repository``, ``bad_branch``, ``fetch_failed``, ``no_branch``,
    ``uncommitted_changes``, ``diverged``, ``checked_out_elsewhere``, ``git_failed``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class CheckoutResult:
    """What :func:`checkout` did. ``remote`` is None when the clone is the session's repository
    itself (the branch was already there); ``previous`` is the branch (or commit) left."""

    clone: Path
    remote: str | None
    branch: str
    sha: str
    switched: bool
    previous: str | None = None

    def __str__(self) -> str:
        where = f"{self.remote}/{self.branch}" if self.remote else self.branch
        if not self.switched:
            return f"Fetched {where} ({self.sha[:8]}) into {self.clone}; your checkout is unchanged."
        left = f" (was on {self.previous})" if self.previous and self.previous != self.branch else ""
        text = f"Switched {self.clone} to {self.branch} at {self.sha[:8]}{left}."
        if self.remote is None:  # git refuses a push to the branch a work tree has checked out
            text += " The session pushes into this repository: switch back before its next prompt, or that push fails."
        return text


# --- pure decisions -----------------------------------------------------------------------------

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/]+):(?P<path>.*)$")


def normalize_repo_url(url: str, relative_to: Path | None = None) -> str:
    """One spelling per repository, to compare a remote with the session's repository.

    Network forms (``https://``, ``ssh://``, ``git://``, scp-like ``user@host:path``) become
    ``host/path``: no user, password or port, no ``.git`` suffix or trailing slash, case-folded
    (hosts are case-insensitive, and so are GitHub's owner and repository names). Local forms
    (paths and ``file://``) become ``file:`` and the real path, with a trailing ``/.git`` dropped
    (a work tree and its ``.git`` are one repository); relative paths are taken from
    ``relative_to`` (the clone), as git takes them.
    """
    text = url.strip()
    if text.lower().startswith("file://"):
        return _local(unquote(urlsplit(text).path), relative_to)
    if _SCHEME.match(text):
        parts = urlsplit(text)
        return _network(parts.hostname or "", unquote(parts.path))
    scp = _SCP.match(text)
    # git's own rule: a colon before the first slash makes it scp-like (``./a:b`` is a path).
    if scp and "/" not in text.split(":", 1)[0]:
        return _network(scp.group("host").strip("[]"), scp.group("path"))
    return _local(text, relative_to)


def _network(host: str, path: str) -> str:
    path = path.strip("/")
    path = path.removesuffix(".git").rstrip("/")
    return f"{host.lower()}/{path}".casefold()


def _local(path: str, relative_to: Path | None) -> str:
    p = Path(os.path.expanduser(path))
    if not p.is_absolute() and relative_to is not None:
        p = relative_to / p
    real = Path(os.path.realpath(p))
    if real.name == ".git":
        real = real.parent
    return "file:" + str(real)


def choose_remote(
    session_repo: str, remotes: dict[str, list[str]], clone: Path, git_dir: Path
) -> str | None:  # fmt: skip
    """The remote of ``clone`` that is ``session_repo`` (``origin`` first among several), or None
    when the clone itself is the session's repository. Raises :class:`CheckoutRefused` naming
    both when it is neither."""
    wanted = normalize_repo_url(session_repo)
    if wanted in (normalize_repo_url(str(clone)), normalize_repo_url(str(git_dir))):
        return None
    matching = [name for name, urls in remotes.items() if any(normalize_repo_url(u, clone) == wanted for u in urls)]
    if matching:
        return "origin" if "origin" in matching else sorted(matching)[0]
    listed = "; ".join(f"{name} = {', '.join(urls)}" for name, urls in sorted(remotes.items())) or "no remotes"
    raise CheckoutRefused(
        "other_repository",
        f"{clone} is not a clone of the session's repository {session_repo}: none of its remotes is ({listed}). "
        "Run this from a clone of it, or give checkout(path=...) one.",
    )


def valid_branch(branch: str) -> bool:
    """A branch name git accepts (the rules of ``git check-ref-format --branch``), checked here
    so that a name from elsewhere can never read as an option or a refspec."""
    if not branch or branch.startswith(("-", "/")) or branch.endswith(("/", ".", ".lock")) or branch == "@":
        return False
    if any(c in branch for c in " ~^:?*[\\\x7f") or any(ord(c) < 32 for c in branch):
        return False
    if ".." in branch or "@{" in branch or "//" in branch:
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/"))


def parse_status(porcelain_z: bytes) -> list[str]:
    """The paths ``git status --porcelain=v1 -z`` lists: staged, unstaged and untracked; both
    names of a rename or copy."""
    paths: list[str] = []
    entries = porcelain_z.split(b"\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        xy, path = entry[:2].decode(), entry[3:]
        paths.append(os.fsdecode(path))
        if "R" in xy or "C" in xy:  # the original name follows as its own entry
            if i < len(entries) and entries[i]:
                paths.append(os.fsdecode(entries[i]))
            i += 1
    return paths


def parse_name_status(name_status_z: bytes) -> list[tuple[str, str]]:
    """``(status letter, path)`` pairs of ``git diff --no-renames --name-status -z``."""
    fields = [os.fsdecode(f) for f in name_status_z.split(b"\0")]
    return [(fields[i][:1], fields[i + 1]) for i in range(0, len(fields) - 1, 2) if fields[i]]


def touched_conflicts(dirty: Iterable[str], touched: Iterable[str]) -> list[str]:
    """Dirty paths the switch would touch: the same path, a file where a folder of touched paths
    would go, or a path inside a folder that becomes a file."""
    touched_set = set(touched)
    folders = {parent for t in touched_set for parent in _parents(t)}
    found = {p for p in (d.rstrip("/") for d in dirty) if p in touched_set or p in folders or _parents(p) & touched_set}
    return sorted(found)


def _on_disk(clone: Path, path: str) -> bool:
    """``path`` or a file in place of one of its folders exists in the work tree."""
    target = clone / path
    if os.path.lexists(target):
        return True
    return any(os.path.lexists(clone / parent) and not (clone / parent).is_dir() for parent in _parents(path))


def _parents(path: str) -> set[str]:
    return {path.rsplit("/", i)[0] for i in range(1, path.count("/") + 1)}


def _listing(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:_SHOWN_PATHS])
    return shown + (f" and {len(paths) - _SHOWN_PATHS} more" if len(paths) > _SHOWN_PATHS else "")


# --- git I/O ------------------------------------------------------------------------------------


class _Git:
    """git in one clone: argv lists, no shell, no prompts, every call bounded in time."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        # Never ask on the kernel's stdin (it would hang the cell); use the user's own config.
        self.env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}

    def run(self, *args: str, timeout_s: float = LOCAL_GIT_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(
                ["git", *args], cwd=self.cwd, env=self.env, capture_output=True, timeout=timeout_s,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise CheckoutRefused("git_failed", f"git {args[0]} did not finish within {timeout_s:.0f} s") from exc
        except FileNotFoundError as exc:
            raise CheckoutRefused("git_failed", "git is not installed (or not on PATH)") from exc
        if check and done.returncode != 0:
            raise CheckoutRefused("git_failed", f"git {args[0]} failed: {_err(done)}")
        return done

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.decode(errors="replace").strip()

    def rev(self, ref: str) -> str | None:
        # Only refs built here reach this (HEAD, refs/heads/<valid name>), never an option.
        done = self.run("rev-parse", "--verify", "--quiet", ref + "^{commit}", check=False)
        return (done.stdout.decode().strip() or None) if done.returncode == 0 else None


def _err(done: subprocess.CompletedProcess) -> str:
    return (done.stderr or done.stdout).decode(errors="replace").strip()[-600:] or f"exit status {done.returncode}"


def _find_clone(start: Path) -> tuple[Path, Path]:
    """The work tree holding ``start`` and its git directory."""
    if not start.exists():
        raise CheckoutRefused("not_a_clone", f"{start} does not exist")
    done = _Git(start if start.is_dir() else start.parent).run(
        "rev-parse", "--show-toplevel", "--absolute-git-dir", check=False
    )
    lines = done.stdout.decode(errors="replace").splitlines()
    if done.returncode != 0 or len(lines) != 2:
        raise CheckoutRefused(
            "not_a_clone",
            f"{start} is not inside a git work tree ({_err(done)}); clone the session's repository and run this there, "
            "or pass checkout(path=...)",
        )
    return Path(lines[0]), Path(lines[1])


def _remotes(git: _Git) -> dict[str, list[str]]:
    done = git.run("config", "-z", "--get-regexp", r"^remote\..*\.url$", check=False)
    remotes: dict[str, list[str]] = {}
    for entry in done.stdout.split(b"\0"):
        if not entry:
            continue
        key, _, value = os.fsdecode(entry).partition("\n")
        name = key[len("remote.") : -len(".url")]
        remotes.setdefault(name, []).append(value)
    return remotes


def checkout(
    session_repo: str, branch: str, *, switch: bool = True, path: str | Path | None = None,
    fetch_timeout_s: float = FETCH_TIMEOUT_S,
) -> CheckoutResult:  # fmt: skip
    """Fetch ``branch`` of ``session_repo`` into the clone at ``path`` (default: the current
    directory) and, when ``switch``, create or fast-forward the local branch and switch to it.
    Raises :class:`CheckoutRefused` (having changed nothing of the user's) when it may not."""
    if not valid_branch(branch):
        raise CheckoutRefused("bad_branch", f"{branch!r} is not a branch name git accepts")
    clone, git_dir = _find_clone(Path(path).expanduser() if path is not None else Path.cwd())
    git = _Git(clone)
    remote = choose_remote(session_repo, _remotes(git), clone, git_dir)

    if remote is None:
        target_ref = f"refs/heads/{branch}"
    else:
        target_ref = f"refs/remotes/{remote}/{branch}"
        fetched = git.run(
            "fetch", "--no-tags", "--no-write-fetch-head", "--", remote, f"+refs/heads/{branch}:{target_ref}",
            timeout_s=fetch_timeout_s, check=False,
        )  # fmt: skip
        if fetched.returncode != 0:
            raise CheckoutRefused("fetch_failed", f"could not fetch {branch} from {remote}: {_err(fetched)}")
    sha = git.rev(target_ref)
    if sha is None:
        raise CheckoutRefused("no_branch", f"{session_repo} has no branch {branch} (yet: has the session pushed?)")
    if not switch:
        return CheckoutResult(clone, remote, branch, sha, switched=False)
    return _switch(git, clone, remote, branch, sha)


def _switch(git: _Git, clone: Path, remote: str | None, branch: str, sha: str) -> CheckoutResult:
    head_branch = git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.decode().strip() or None
    head = git.rev("HEAD")
    previous = head_branch or (head[:8] if head else None)
    local = git.rev(f"refs/heads/{branch}")
    if local is not None and local != sha:
        ancestor = git.run("merge-base", "--is-ancestor", local, sha, check=False).returncode
        if ancestor != 0:
            raise CheckoutRefused(
                "diverged",
                f"your local branch {branch} ({local[:8]}) has commits that the session's ({sha[:8]}) does not; "
                f"nothing was changed. Fetched as {remote}/{branch}: merge or rebase it yourself"
                if remote
                else f"your local branch {branch} is not an ancestor of {sha[:8]}; nothing was changed",
            )
    if head_branch == branch and head == sha:
        return CheckoutResult(clone, remote, branch, sha, switched=True, previous=previous)

    # What the switch rewrites in the work tree: every path that differs between HEAD and the
    # target (both names of a rename), or all of the target's on an unborn HEAD.
    if head is not None:
        changed = parse_name_status(git.run("diff", "--no-renames", "--name-status", "-z", head, sha, "--").stdout)
    else:
        listed = git.run("ls-tree", "-r", "--name-only", "-z", sha).stdout
        changed = [("A", os.fsdecode(p)) for p in listed.split(b"\0") if p]
    touched = [path for _, path in changed]
    dirty = parse_status(git.run("status", "--porcelain=v1", "-z", "--untracked-files=all").stdout)
    # Files the branch adds that are on disk already but not in HEAD: untracked, or ignored
    # (which status does not list and a plain switch would overwrite without a word).
    dirty += [path for status, path in changed if status == "A" and _on_disk(clone, path)]
    conflicts = touched_conflicts(dirty, touched)
    if conflicts:
        raise CheckoutRefused(
            "uncommitted_changes",
            f"you have uncommitted changes in files the switch to {branch} would change: {_listing(conflicts)}. "
            "Commit or move them aside first (nothing was changed"
            + (f"; the branch is fetched as {remote}/{branch}" if remote else "") + ")",
        )  # fmt: skip

    elsewhere = _checked_out_elsewhere(git, clone, branch)
    if elsewhere is not None:
        raise CheckoutRefused("checked_out_elsewhere", f"{branch} is checked out in the work tree {elsewhere}")

    if head_branch == branch:  # on the branch already, behind the session: fast-forward in place
        _or_refuse(git.run("merge", "--ff-only", "--no-overwrite-ignore", "--", sha, check=False), branch)
    elif local is None:
        _or_refuse(git.run("switch", "--no-overwrite-ignore", "--no-track", "-c", branch, sha, "--", check=False), branch)
    else:
        if local != sha:  # compare-and-swap: a concurrent commit to it makes this fail, not vanish
            git.run("update-ref", "-m", "cloudws checkout: fast-forward", f"refs/heads/{branch}", sha, local)
        switched = git.run("switch", "--no-overwrite-ignore", "--", branch, check=False)
        if switched.returncode != 0 and local != sha:  # put the branch back where the user had it
            git.run("update-ref", "-m", "cloudws checkout: undo", f"refs/heads/{branch}", local, sha, check=False)
        _or_refuse(switched, branch)
    return CheckoutResult(clone, remote, branch, sha, switched=True, previous=previous)


def _or_refuse(done: subprocess.CompletedProcess, branch: str) -> None:
    """git's own refusal (it would overwrite an ignored or untracked file) as ours."""
    if done.returncode != 0:
        raise CheckoutRefused("uncommitted_changes", f"git refused to switch to {branch}: {_err(done)}")


def _checked_out_elsewhere(git: _Git, clone: Path, branch: str) -> str | None:
    done = git.run("worktree", "list", "--porcelain", "-z", check=False)
    if done.returncode != 0:
        return None
    worktree = None
    for field in done.stdout.split(b"\0"):
        text = os.fsdecode(field)
        if text.startswith("worktree "):
            worktree = text[len("worktree ") :]
        elif text == f"branch refs/heads/{branch}" and worktree and Path(worktree).resolve() != clone.resolve():
            return worktree
    return None
