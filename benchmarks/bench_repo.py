"""The repository every benchmark's sessions work on: a bare repo with one commit on main."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_repo(root: Path) -> Path:
    repo, seed = root / "repo.git", root / "seed"
    ident = ["-c", "user.name=Bench", "-c", "user.email=bench@example.test"]
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "clone", "-q", str(repo), str(seed)], check=True, capture_output=True)
    (seed / "README.md").write_text("# bench\n")
    subprocess.run(["git", *ident, "-C", str(seed), "add", "-A"], check=True)
    subprocess.run(["git", *ident, "-C", str(seed), "commit", "-qm", "init"], check=True)
    subprocess.run(["git", "-C", str(seed), "push", "-q", "origin", "HEAD:main"], check=True)
    return repo
