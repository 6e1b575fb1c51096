"""Shared by the tests under tests/github: the repository the fake GitHub serves, and a push."""

from __future__ import annotations

from pathlib import Path

from jupyter_cloudws.testing.git_http import GitHttpServer
from support import git

REPO = "octo-user/project"


def push_branch(server: GitHttpServer, full_name: str, branch: str, tmp: Path, files: dict[str, str]) -> str:
    """Commit ``files`` on a new ``branch`` of ``full_name`` and push it; its sha."""
    work = tmp / f"push-{full_name.replace('/', '-')}-{branch.replace('/', '-')}"
    git("clone", "--quiet", server.url_for(full_name), str(work))
    git("checkout", "--quiet", "-b", branch, cwd=work)
    for rel, content in files.items():
        (work / rel).write_text(content)
    git("add", "--all", cwd=work)
    git("commit", "--quiet", "-m", f"work on {branch}", cwd=work)
    git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)
