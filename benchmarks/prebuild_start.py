"""What a prebuilt repository image saves: the time from a new session's first prompt to its sandbox
being ready, started from a clone (clone, then the setup script) versus from the repository's
prebuilt image (restore, fetch, branch; the setup script ran at prebuild).

A real jupyter-server with the extension and local sandboxes, the real Claude Code CLI against the
fake API. The repository's ``.cloudws/setup.sh`` writes ``--setup-files`` small files and then
sleeps ``--setup-s`` seconds, standing in for a dependency install (say so when quoting figures).
Each run is a new session; the first of each kind is not counted (it warms the server up).

    .venv/bin/python benchmarks/prebuild_start.py [--runs 5] [--setup-s 2] [--setup-files 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from cloudws_sandbox.procs import kill_marked
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text
from jupyter_cloudws.testing.server import ServerProcess


def make_repo(root: Path, setup_s: float, setup_files: int) -> Path:
    repo, seed = root / "repo.git", root / "seed"
    ident = ["-c", "user.name=Bench", "-c", "user.email=bench@example.test"]
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "clone", "-q", str(repo), str(seed)], check=True, capture_output=True)
    (seed / "README.md").write_text("# bench\n")
    (seed / ".gitignore").write_text("deps/\n")
    (seed / ".cloudws").mkdir()
    (seed / ".cloudws" / "setup.sh").write_text(
        f"mkdir -p deps\nfor i in $(seq 1 {setup_files}); do echo \"module $i\" > deps/m$i.txt; done\nsleep {setup_s}\n"
    )
    subprocess.run(["git", *ident, "-C", str(seed), "add", "-A"], check=True)
    subprocess.run(["git", *ident, "-C", str(seed), "commit", "-qm", "init"], check=True)
    subprocess.run(["git", "-C", str(seed), "push", "-q", "origin", "HEAD:main"], check=True)
    return repo


def time_to_ready(server: ServerProcess, client: Any, repo: Path, n: int) -> float:
    """Seconds from POSTing a new session's first prompt to its sandbox's ``ready``."""
    sid = client.post("/sessions", json={"repo": str(repo), "base_branch": "main"}).json()["id"]
    url = server.api_url.replace("http", "ws", 1) + f"/sessions/{sid}/ws"
    with connect(url, additional_headers=server.headers, max_size=None) as ws:
        ws.send(json.dumps({"type": "subscribe"}))
        ws.recv()
        t0 = time.perf_counter()
        client.post(f"/sessions/{sid}/prompts", json={"text": f"bench ping {n}"})
        t_ready = None
        while True:
            event = json.loads(ws.recv(timeout=300)).get("event") or {}
            if event.get("type") == "sandbox_status" and event["status"] == "ready" and t_ready is None:
                t_ready = time.perf_counter() - t0
            if event.get("type") == "execution_complete":
                assert event["success"], event
                break
    client.patch(f"/sessions/{sid}", json={"archived": True})  # ends its sandbox
    return t_ready if t_ready is not None else float("nan")


def prebuild(client: Any, repo: Path) -> dict[str, Any]:
    build = client.post("/prebuilds", json={"repo": str(repo), "branch": "main"}).json()
    while build["status"] == "building":
        time.sleep(0.2)
        build = client.get(f"/prebuilds/{build['id']}").json()
    assert build["status"] == "ready", build
    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--setup-s", type=float, default=2.0)
    parser.add_argument("--setup-files", type=int, default=2000)
    args = parser.parse_args()
    with FakeAnthropic() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.on("bench ping", text("pong"))
        root = Path(tmp)
        repo = make_repo(root, args.setup_s, args.setup_files)
        sandbox_env = {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": "sk-bench", "CLAUDE_CODE_MAX_RETRIES": "0"}
        config = {"sandbox_env": sandbox_env, "local_repo_roots": [str(root)]}
        server = ServerProcess(root / "server", cloudws_config=config).start()
        try:
            with server.client() as client:
                cloned = [time_to_ready(server, client, repo, n) for n in range(args.runs + 1)][1:]
                build = prebuild(client, repo)
                prebuilt = [time_to_ready(server, client, repo, n) for n in range(args.runs + 1)][1:]
        finally:
            server.stop()
            kill_marked(str(root / "server"))
    clone_s, image_s = statistics.median(cloned), statistics.median(prebuilt)
    print(f"setup script: {args.setup_files} files, then sleep {args.setup_s:g} s (a stand-in for an install)")
    print(f"prebuild itself: {build['duration_s']:.2f} s")
    print(f"time to a ready sandbox, median of {args.runs}:")
    print(f"  from a clone (clone + setup):     {clone_s:.2f} s   {[round(t, 2) for t in cloned]}")
    print(f"  from the prebuilt image (fetch):  {image_s:.2f} s   {[round(t, 2) for t in prebuilt]}")
    print(f"  ratio clone / image: {clone_s / image_s:.1f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
