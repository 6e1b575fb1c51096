"""The new-session form's GitHub lists: the user's repositories and a chosen one's branches, as
the front end draws them. Pure: no widgets, no I/O.

Names and descriptions come from the git host, where anyone who can name a repository or write
its description chooses them: they reach the front end as plain strings, which it only ever sets
as text. A field of the wrong type becomes empty here, so the page never has to guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_LISTED_REPOS = 200  # what one answer sends to the page; typing narrows the rest on the server
MAX_LISTED_BRANCHES = 500
NOT_CONFIGURED_HINT = (
    "Set c.GitHub.token in the Jupyter server's configuration (or GITHUB_TOKEN in its environment) "
    "to choose from your GitHub repositories here."
)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def repo_choices(answer: Any) -> dict[str, Any]:
    """``{configured, repos}`` of ``client.github_repos()``: each repository checked, the server's
    order (most recently pushed first) kept; one without a name or clone URL cannot be chosen
    and is left out."""
    if not isinstance(answer, Mapping):
        return {"configured": False, "repos": []}
    repos = []
    for r in answer.get("repos") or []:
        if not isinstance(r, Mapping):
            continue
        full_name, clone_url = _text(r.get("full_name")), _text(r.get("clone_url"))
        if not full_name or not clone_url:
            continue
        repos.append({
            "full_name": full_name, "clone_url": clone_url, "private": r.get("private") is True,
            "pushed_at": _text(r.get("pushed_at")), "default_branch": _text(r.get("default_branch")),
            "description": _text(r.get("description")),
        })  # fmt: skip
        if len(repos) == MAX_LISTED_REPOS:
            break
    return {"configured": answer.get("configured") is True, "repos": repos}


def branch_choices(answer: Any) -> dict[str, Any]:
    """``{default_branch, branches}`` of ``client.github_branches()``: the default branch first
    (listed even when the host's page of branches left it out), the others in the server's order."""
    answer = answer if isinstance(answer, Mapping) else {}
    default = _text(answer.get("default_branch"))
    branches: list[dict[str, Any]] = []
    seen: set[str] = set()
    for b in answer.get("branches") or []:
        name = _text(b.get("name")) if isinstance(b, Mapping) else ""
        if name and name not in seen:
            seen.add(name)
            branches.append({"name": name, "protected": b.get("protected") is True})
    if default and default not in seen:
        branches.append({"name": default, "protected": False})
    branches.sort(key=lambda b: b["name"] != default)  # stable: the rest keep their order
    return {"default_branch": default, "branches": branches[:MAX_LISTED_BRANCHES]}


def error_words(exc: BaseException) -> str:
    """A refusal as a sentence: the hub's message without its code and status."""
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) and message else str(exc) or type(exc).__name__
