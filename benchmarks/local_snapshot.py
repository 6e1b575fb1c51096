"""What a local snapshot costs: copying a sandbox's work tree and home into a snapshot (taken after
every prompt) and back into a new sandbox (instead of a clone), against a ``git clone`` of the same
repository measured in the same run.

The sandbox folder is built as a sandbox leaves it: the benchmark repository cloned into
``box/repo``, a small home, and optionally ``--files`` more files of 4 KiB under an ignored
``node_modules`` (what a setup script leaves). Both copy paths are timed: GNU ``cp -a
--reflink=auto`` (used on Linux) and the Python fallback.

    .venv/bin/python benchmarks/local_snapshot.py [--runs 10] [--files 0]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_repo import make_repo
from jupyter_cloudws.backends import local_snapshots


def build_box(root: Path, repo: Path, files: int) -> Path:
    box = root / "box"
    subprocess.run(["git", "clone", "-q", str(repo), str(box / "repo")], check=True)
    (box / "home" / ".cache").mkdir(parents=True)
    (box / "home" / ".cache" / "x").write_bytes(b"\0" * 4096)
    modules = box / "repo" / "node_modules"
    for n in range(files):
        path = modules / f"pkg{n // 100}" / f"f{n}.js"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 4096)
    return box


def timed(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of ``fn(i)`` over ``runs`` calls."""
    seconds = []
    for i in range(runs):
        t0 = time.perf_counter()
        fn(i)
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--files", type=int, default=0, help="extra 4 KiB files in an ignored node_modules")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root)
        box = build_box(root, repo, args.files)
        snaps = root / "snapshots"

        def clone(i: int) -> None:
            subprocess.run(["git", "clone", "-q", str(repo), str(root / f"clone{i}")], check=True)

        def take(use_cp: bool):  # type: ignore[no-untyped-def]
            def run(i: int) -> None:
                target = snaps / f"{'cp' if use_cp else 'py'}{i}"
                target.mkdir(parents=True)
                for part in ("repo", "home"):
                    local_snapshots.copy_tree(box / part, target / part, use_cp=use_cp)
            return run

        def restore(i: int) -> None:
            (root / f"restored{i}").mkdir()
            local_snapshots.restore(snaps / f"cp{i}", root / f"restored{i}", ("repo", "home"))

        t_clone = timed(clone, args.runs)
        t_cp = timed(take(True), args.runs)
        t_py = timed(take(False), args.runs)
        t_restore = timed(restore, args.runs)
        size_kib = sum(p.stat().st_size for p in box.rglob("*") if p.is_file()) // 1024
        shutil.rmtree(snaps, ignore_errors=True)
    print(f"sandbox tree: {size_kib} KiB, {args.files} extra files; median of {args.runs} runs")
    print(f"  git clone (baseline)       {t_clone * 1000:8.1f} ms")
    print(f"  snapshot, cp -a --reflink  {t_cp * 1000:8.1f} ms   ({t_cp / t_clone:.2f}x the clone)")
    print(f"  snapshot, Python fallback  {t_py * 1000:8.1f} ms   ({t_py / t_clone:.2f}x the clone)")
    print(f"  restore into a new box     {t_restore * 1000:8.1f} ms   ({t_restore / t_clone:.2f}x the clone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
