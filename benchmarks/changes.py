"""What ``GET sessions/{id}/changes`` costs for a branch that touches many files: the hub's
``changes`` (its mirror already fetched) for the whole session and for the one prompt that made
the work, against one plain ``git diff --numstat`` of the same two commits in the same run.

The repository has ``--files`` files of 40 lines on main; the session branch edits three lines in
each (a few are renamed, deleted or added instead), as one prompt that logged its ``git`` event.
The answer must come in under a second for 1,000 files (the issue's bar).

Then one prompt that edits a notebook whose one code cell has 8,000 short repeated lines (46 KB):
nbdime took 51 s to match it; it is now paired without nbdime. Its ``changes`` is timed against
difflib's unified diff of the cell's two sources in the same run.

    .venv/bin/python benchmarks/changes.py [--files 1000] [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cloudws_sandbox import gitops
from cloudws_sandbox.protocol import GitEvent
from jupyter_cloudws.hub import HubSettings, Requester, SessionHub
from jupyter_cloudws.store import SessionStore
from jupyter_cloudws.testing.fake_backend import FakeBackend

BAR_S = 1.0
IDENT = ["-c", "user.name=Bench", "-c", "user.email=bench@example.test"]
BRANCH = "cloudws/bench"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *IDENT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def build(root: Path, files: int) -> tuple[Path, str, str]:
    """A bare origin, and the base and head commits of a session branch touching ``files`` files."""
    origin, work = root / "origin.git", root / "work"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=root)
    git("init", "-q", "-b", "main", str(work), cwd=root)
    for n in range(files):
        path = work / f"pkg{n // 100}" / f"module_{n}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"value_{i} = {i * n}  # line {i} of module {n}\n" for i in range(40)))
    git("add", "-A", cwd=work)
    git("commit", "-qm", "base", cwd=work)
    base = git("rev-parse", "HEAD", cwd=work)
    git("push", "-q", str(origin), "HEAD:main", cwd=work)
    git("checkout", "-q", "-b", BRANCH, cwd=work)
    for n in range(files):
        path = work / f"pkg{n // 100}" / f"module_{n}.py"
        if n % 100 == 1:
            path.unlink()
        elif n % 100 == 2:
            path.rename(path.with_name(f"renamed_{n}.py"))
        else:
            lines = path.read_text().splitlines(keepends=True)
            lines[3], lines[20], lines[37] = "changed = 3\n", "changed = 20\n", "changed = 37\n"
            path.write_text("".join(lines))
    git("add", "-A", cwd=work)
    git("commit", "-qm", "the prompt's work", cwd=work)
    head = git("rev-parse", "HEAD", cwd=work)
    git("push", "-q", str(origin), f"HEAD:refs/heads/{BRANCH}", cwd=work)
    return origin, base, head


def notebook(lines: list[str]) -> str:
    cell = {"cell_type": "code", "id": "big", "metadata": {}, "execution_count": 1, "outputs": [], "source": lines}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n"


async def measure_notebook(root: Path, runs: int) -> None:
    """``changes`` of one prompt editing the 8,000-line cell, against difflib on the same sources."""
    old_lines = ["x = 1\n"] * 8000
    new_lines = ["y = 2\n" if i % 7 == 0 else "x = 1\n" for i in range(8000)]
    origin, work = root / "nb-origin.git", root / "nb-work"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=root)
    git("init", "-q", "-b", BRANCH, str(work), cwd=root)
    (work / "big.ipynb").write_text(notebook(old_lines))
    git("add", "-A", cwd=work)
    git("commit", "-qm", "base", cwd=work)
    base = git("rev-parse", "HEAD", cwd=work)
    (work / "big.ipynb").write_text(notebook(new_lines))
    git("commit", "-qam", "edit the big cell", cwd=work)
    head = git("rev-parse", "HEAD", cwd=work)
    git("push", "-q", str(origin), f"HEAD:refs/heads/{BRANCH}", "HEAD~1:refs/heads/main", cwd=work)
    hub = SessionHub(SessionStore(":memory:"), FakeBackend(), HubSettings(data_dir=str(root / "nb-data")))
    sid = hub.store.create_session(owner="bench", repo=str(origin), base_branch="main", branch=BRANCH,
                                   title="bench", model=None)["id"]  # fmt: skip
    prompt, _ = hub.store.enqueue_prompt(sid, text="edit", model=None, client_request_id=None,
                                         author={"username": "bench"}, max_queue=10)  # fmt: skip
    listed, total = await gitops.changed_files(str(work), base, head)
    hub.store.append_event(sid, GitEvent(BRANCH, head, True, message_id=prompt["id"], before=base,
                                         files=listed, files_total=total))  # fmt: skip
    who = Requester("bench")
    (entry,) = (await hub.changes(sid, who, prompt["id"]))["files"]  # fetches; imports nbformat
    changes_s, difflib_s = [], []
    for _ in range(runs):
        t = time.perf_counter()
        await hub.changes(sid, who, prompt["id"])
        changes_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        list(difflib.unified_diff(old_lines, new_lines))
        difflib_s.append(time.perf_counter() - t)
    await hub.close()
    answer_s, baseline_s = statistics.median(changes_s), statistics.median(difflib_s)
    size_kib = len(notebook(new_lines)) // 1024
    print(f"notebook with one 8,000-line cell ({size_kib} KiB), note: {entry['note']!r}; median of {runs} runs")
    print(f"  difflib on the cell's sources (baseline) {baseline_s * 1000:8.1f} ms")
    print(f"  changes, the prompt                       {answer_s * 1000:8.1f} ms   ({answer_s / baseline_s:.1f}x the baseline)")


async def measure(root: Path, files: int, runs: int) -> int:
    origin, base, head = build(root, files)
    hub = SessionHub(SessionStore(":memory:"), FakeBackend(), HubSettings(data_dir=str(root / "data")))
    session = hub.store.create_session(owner="bench", repo=str(origin), base_branch="main", branch=BRANCH,
                                       title="bench", model=None)  # fmt: skip
    sid = session["id"]
    prompt, _ = hub.store.enqueue_prompt(sid, text="touch everything", model=None, client_request_id=None,
                                         author={"username": "bench"}, max_queue=10)  # fmt: skip
    listed, total = await gitops.changed_files(str(root / "work"), base, head)
    hub.store.append_event(sid, GitEvent(BRANCH, head, True, message_id=prompt["id"], before=base,
                                         files=listed, files_total=total))  # fmt: skip
    who = Requester("bench")

    t0 = time.perf_counter()
    first = await hub.changes(sid, who)  # fetches into the mirror
    cold_s = time.perf_counter() - t0
    mirror = hub.review.mirrors.path_for(str(origin))

    async def timed(fn) -> float:  # type: ignore[no-untyped-def]
        seconds = []
        for _ in range(runs):
            t = time.perf_counter()
            await fn()
            seconds.append(time.perf_counter() - t)
        return statistics.median(seconds)

    async def numstat() -> None:
        proc = await asyncio.create_subprocess_exec(
            "git", "--git-dir", str(mirror), "diff", "--numstat", base, head,
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await proc.wait()

    session_s = await timed(lambda: hub.changes(sid, who))
    prompt_s = await timed(lambda: hub.changes(sid, who, prompt["id"]))
    baseline_s = await timed(numstat)
    await hub.close()

    diff_kib = sum(len(f["diff"].encode()) for f in first["files"]) // 1024
    print(f"branch touching {first['totals']['files']} files (+{first['totals']['additions']} "
          f"-{first['totals']['deletions']}), {diff_kib} KiB of diffs; median of {runs} runs")  # fmt: skip
    print(f"  git diff --numstat (baseline)   {baseline_s * 1000:8.1f} ms")
    print(f"  changes, session (mirror warm)  {session_s * 1000:8.1f} ms   ({session_s / baseline_s:.1f}x the baseline)")
    print(f"  changes, one prompt             {prompt_s * 1000:8.1f} ms   ({prompt_s / baseline_s:.1f}x the baseline)")
    print(f"  changes, first call (fetches)   {cold_s * 1000:8.1f} ms")
    slowest = max(session_s, prompt_s)
    verdict = "under" if slowest < BAR_S else "OVER"
    print(f"  {verdict} the {BAR_S:.0f} s bar ({slowest / BAR_S:.2f} of it)")
    return 0 if slowest < BAR_S else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        verdict = asyncio.run(measure(Path(tmp), args.files, args.runs))
        asyncio.run(measure_notebook(Path(tmp), args.runs))
        return verdict


if __name__ == "__main__":
    sys.exit(main())
