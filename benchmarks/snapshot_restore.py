"""Time to a ready sandbox from a snapshot versus from a clone, on the Modal backend.

MEASURED WITH THE FAKE ``modal`` MODULE (``jupyter_cloudws.testing.fake_modal``), not Modal: a
sandbox is local processes under bubblewrap, a snapshot is a copy of its ``/cloudws`` tree on this
disk, and the repository comes from a real git HTTP server on loopback. So the figures show what
the hub and the runtime do on each path (a clone and checkout versus a fetch), not Modal's own
image and network times.

A real jupyter-server with the extension on the modal backend, the real Claude Code CLI against
the fake Anthropic API. For each run: a new session's first prompt (clone), then, after the idle
stop, a prompt that starts from the session's snapshot (restore), then one whose snapshot was
made to expire (clone of the session branch and the saved conversation copied in). Each is timed
from POSTing the prompt to the sandbox's ``ready`` status and to the prompt's completion.

    .venv/bin/python benchmarks/snapshot_restore.py [--runs 3] [--files 3000] [--commits 10] [--no-setup]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from jupyter_cloudws.testing import fake_modal
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text
from jupyter_cloudws.testing.git_http import GitHttpServer
from jupyter_cloudws.testing.server import ServerProcess

REPLY = "Done: nothing to change."
FILE_BYTES = 4096


# What a repository's setup typically does: make an environment the work tree ignores. A fresh clone
# runs it; a sandbox restored from a snapshot has its result already.
SETUP_SCRIPT = "#!/bin/sh\nset -e\npython -m venv --without-pip .venv\npython -m compileall -q . > /dev/null\n"


def make_big_remote(git: GitHttpServer, files: int, commits: int, setup: bool) -> str:
    """A repository of ``files`` text files and ``commits`` commits of history on main, with a
    setup script when ``setup``."""
    seed_files = {"README.md": "# big\n", ".gitignore": ".venv/\n__pycache__/\n"}
    if setup:
        seed_files[".cloudws/setup.sh"] = SETUP_SCRIPT
    url = git.make_remote("big", seed_files)
    with tempfile.TemporaryDirectory(prefix="cloudws-seed-") as tmp:
        seed = Path(tmp) / "seed"
        ident = ["-c", "user.name=Bench", "-c", "user.email=bench@example.test"]
        subprocess.run(["git", "clone", "-q", str(git.path_for("big")), str(seed)], check=True)
        for c in range(commits):
            for i in range(c, files, max(commits, 1)):
                path = seed / f"pkg{i % 50}" / f"module_{i}.py"
                path.parent.mkdir(exist_ok=True)
                line = f"# module {i}, revision {c}\n"
                path.write_text(line * (FILE_BYTES // len(line)))
            subprocess.run(["git", *ident, "-C", str(seed), "add", "-A"], check=True)
            subprocess.run(["git", *ident, "-C", str(seed), "commit", "-qm", f"revision {c}"], check=True)
        subprocess.run(["git", "-C", str(seed), "push", "-q", "origin", "HEAD:main"], check=True)
    return url


def prompt(client: Any, ws: ClientConnection, sid: str, n: int) -> tuple[float, float, list[str]]:
    """POST one prompt; seconds to the sandbox's ``ready`` and to the prompt's completion, and the
    start-up steps the sandbox reported."""
    t0 = time.perf_counter()
    mid = client.post(f"/sessions/{sid}/prompts", json={"text": f"bench ping {n}"}).json()["message_id"]
    t_ready = float("nan")
    steps: list[str] = []
    while True:
        frame = json.loads(ws.recv(timeout=300))
        event = frame.get("event") or {}
        if event.get("type") == "sandbox_progress" and event["state"] == "done":
            steps.append(f"{event['step']} {event['elapsed_ms']}")
        if event.get("type") == "sandbox_status" and event["status"] == "ready":
            t_ready = time.perf_counter() - t0
        if event.get("type") == "execution_complete":
            assert event["message_id"] == mid and event["success"], frame
            return t_ready, time.perf_counter() - t0, steps


def wait_for_idle_stop(ws: ClientConnection, timeout_s: float) -> None:
    while True:
        frame = json.loads(ws.recv(timeout=timeout_s))
        event = frame.get("event") or {}
        if event.get("type") == "sandbox_status" and event["status"] == "stopped":
            return


def snapshot_of(db: Path, sid: str) -> str | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT snapshot_id FROM sessions WHERE id = ?", (sid,)).fetchone()
    return row[0] if row else None


def run(fake: FakeAnthropic, root: Path, runs: int, files: int, commits: int, idle_timeout_s: float,
        setup: bool) -> dict[str, Any]:  # fmt: skip
    fake_root = root / "fake-modal"
    fake_root.mkdir()
    os.environ.update({fake_modal.ROOT_ENV: str(fake_root), "MODAL_TOKEN_ID": "ak-bench", "MODAL_TOKEN_SECRET": "as-bench"})
    out: dict[str, list[tuple[float, float, list[str]]]] = {"clone": [], "snapshot": [], "expired": []}
    with GitHttpServer(root / "git").start() as git:
        url = make_big_remote(git, files, commits, setup)
        sandbox_env = {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": "sk-bench", "CLAUDE_CODE_MAX_RETRIES": "0"}
        config = {"backend": "modal", "sandbox_env": sandbox_env, "sandbox_idle_timeout_s": idle_timeout_s}
        modal_config = {"ModalBackend": {"modal_module": "jupyter_cloudws.testing.fake_modal"}}
        server = ServerProcess(root / "server", cloudws_config=config, config=modal_config).start()
        db = root / "server" / "data" / "cloudws" / "cloudws.sqlite"

        @contextmanager
        def subscribe(sid: str) -> Iterator[ClientConnection]:
            ws_url = server.api_url.replace("http", "ws", 1) + f"/sessions/{sid}/ws"
            with connect(ws_url, additional_headers=server.headers, max_size=None) as ws:
                ws.send(json.dumps({"type": "subscribe"}))
                ws.recv()
                yield ws

        try:
            with server.client() as client:
                for n in range(runs + 1):
                    sid = client.post("/sessions", json={"repo": url}).json()["id"]
                    with subscribe(sid) as ws:
                        clone = prompt(client, ws, sid, 0)
                        wait_for_idle_stop(ws, idle_timeout_s + 120)
                        restored = prompt(client, ws, sid, 1)
                        wait_for_idle_stop(ws, idle_timeout_s + 120)
                        snapshot_id = snapshot_of(db, sid)
                        assert snapshot_id, "no snapshot was stored"
                        fake_modal.expire_image(str(fake_root), snapshot_id)
                        expired = prompt(client, ws, sid, 2)
                        wait_for_idle_stop(ws, idle_timeout_s + 120)
                    if n:  # the first round also builds the image and warms the server: not counted
                        out["clone"].append(clone)
                        out["snapshot"].append(restored)
                        out["expired"].append(expired)
        finally:
            server.stop()
            fake_modal.terminate_all(str(fake_root))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--commits", type=int, default=10)
    parser.add_argument("--idle-timeout-s", type=float, default=2.0)
    parser.add_argument("--no-setup", action="store_true", help="no .cloudws/setup.sh in the repository")
    args = parser.parse_args()
    with FakeAnthropic() as fake, tempfile.TemporaryDirectory(prefix="cloudws-bench-") as tmp:
        fake.on("bench ping", text(REPLY))
        r = run(fake, Path(tmp), args.runs, args.files, args.commits, args.idle_timeout_s, not args.no_setup)

    def med_ms(rows: list[tuple[float, float, list[str]]], i: int) -> float:
        return statistics.median(row[i] for row in rows) * 1000

    size_mib = args.files * FILE_BYTES / 2**20
    print("MEASURED WITH THE FAKE modal MODULE (local processes, snapshots copied on this disk), not Modal")
    setup = "no setup script" if args.no_setup else "a setup script (venv + compileall)"
    print(f"repository: {args.files} files (~{size_mib:.0f} MiB work tree), {args.commits} commits, {setup}; "
          f"median of {args.runs} runs (ms)")
    print(f"{'':30}{'clone':>10}{'snapshot':>10}{'expired':>10}{'snap/clone':>12}")
    for i, label in enumerate(("prompt -> sandbox ready", "prompt -> prompt complete")):
        clone, snap, expired = med_ms(r["clone"], i), med_ms(r["snapshot"], i), med_ms(r["expired"], i)
        print(f"{label:30}{clone:10.0f}{snap:10.0f}{expired:10.0f}{snap / clone:12.2f}")
    print("steps: clone", r["clone"][0][2], "| snapshot", r["snapshot"][0][2], "| expired", r["expired"][0][2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
