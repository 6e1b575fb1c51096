"""Prompt latency through the hub versus the bare Claude Code CLI, against the same fake API.

Baseline: one long-lived ``claude --input-format stream-json`` process; time from writing a user
message to its first text delta and to its ``result`` line.
Hub: a real jupyter-server with the extension and a local sandbox; time from POSTing a prompt to
the first ``delta`` frame on the session's WebSocket and to its ``execution_complete`` event
(which comes after the work is committed and pushed, a step the bare CLI does not take).

    .venv/bin/python benchmarks/prompt_latency.py [--runs 10]
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

from websockets.sync.client import connect

from bench_repo import make_repo
from cloudws_sandbox.procs import kill_marked

from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text
from jupyter_cloudws.testing.pytest_plugin import bundled_claude_path, claude_env_for
from jupyter_cloudws.testing.server import ServerProcess

# Both sides rest this long before each prompt, so neither is measured while the CLI still
# finishes the previous turn (writing its transcript) — back to back, the bare CLI looked slower.
PAUSE_S = 0.2
REPLY = "Pong: " + "the quick brown fox jumps over the lazy dog. " * 4


def bare_cli(fake: FakeAnthropic, root: Path, runs: int) -> tuple[list[float], list[float]]:
    cli = bundled_claude_path()
    assert cli, "claude-agent-sdk's bundled CLI is missing"
    workdir = root / "bare-work"  # a clone, as in a sandbox: Claude Code reads git state per turn
    subprocess.run(["git", "clone", "-q", str(root / "repo.git"), str(workdir)], check=True, capture_output=True)
    proc = subprocess.Popen(
        [str(cli), "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
         "--include-partial-messages", "--permission-mode", "bypassPermissions"],
        cwd=workdir, env=claude_env_for(fake.url, root / "bare-env"), text=True, bufsize=1,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdin and proc.stdout
    first, total = [], []
    try:
        for n in range(runs + 1):  # the first run boots the process: not counted
            time.sleep(PAUSE_S)
            t0 = time.perf_counter()
            msg = {"type": "user", "message": {"role": "user", "content": f"bench ping {n}"}}
            proc.stdin.write(json.dumps(msg) + "\n")
            proc.stdin.flush()
            t_first = None
            for line in proc.stdout:
                obj = json.loads(line)
                if t_first is None and obj.get("type") == "stream_event" and (
                    obj["event"].get("delta", {}).get("type") == "text_delta"
                ):
                    t_first = time.perf_counter() - t0
                if obj.get("type") == "result":
                    break
            if n:
                first.append(t_first or float("nan"))
                total.append(time.perf_counter() - t0)
    finally:
        proc.stdin.close()
        proc.wait(10)
    return first, total


def hub(fake: FakeAnthropic, root: Path, runs: int) -> tuple[float, list[float], list[float]]:
    repo = make_repo(root)

    sandbox_env = {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": "sk-bench", "CLAUDE_CODE_MAX_RETRIES": "0"}
    server = ServerProcess(root / "server", cloudws_config={"sandbox_env": sandbox_env, "local_repo_roots": [str(root)]}).start()
    first, total = [], []
    try:
        with server.client() as client:
            sid = client.post("/sessions", json={"repo": str(repo)}).json()["id"]
            ws_url = server.api_url.replace("http", "ws", 1) + f"/sessions/{sid}/ws"
            with connect(ws_url, additional_headers=server.headers, max_size=None) as ws:
                ws.send(json.dumps({"type": "subscribe"}))
                ws.recv()
                cold_s = 0.0
                for n in range(runs + 1):  # run 0 spawns the sandbox: reported apart
                    time.sleep(PAUSE_S)
                    t0 = time.perf_counter()
                    mid = client.post(f"/sessions/{sid}/prompts", json={"text": f"bench ping {n}"}).json()["message_id"]
                    t_first = None
                    while True:
                        frame = json.loads(ws.recv(timeout=60))
                        if t_first is None and frame["type"] == "delta" and frame["message_id"] == mid:
                            t_first = time.perf_counter() - t0
                        if frame["type"] == "event" and frame["event"]["type"] == "execution_complete":
                            assert frame["event"]["message_id"] == mid and frame["event"]["success"], frame
                            break
                    if n == 0:
                        cold_s = time.perf_counter() - t0
                    else:
                        first.append(t_first or float("nan"))
                        total.append(time.perf_counter() - t0)
    finally:
        server.stop()
        kill_marked(str(root / "server" / "data" / "cloudws" / "sandboxes"))
    return cold_s, first, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with FakeAnthropic() as fake, tempfile.TemporaryDirectory(prefix="cloudws-bench-") as tmp:
        fake.on("bench ping", text(REPLY))
        root = Path(tmp)
        cold_s, h_first, h_total = hub(fake, root, args.runs)
        b_first, b_total = bare_cli(fake, root, args.runs)

    def med(xs: list[float]) -> float:
        return statistics.median(xs) * 1000

    print(f"prompt latency, median of {args.runs} warm runs (ms)")
    print(f"{'':28}{'bare CLI':>10}{'via hub':>10}{'ratio':>8}")
    print(f"{'prompt -> first text delta':28}{med(b_first):10.1f}{med(h_first):10.1f}{med(h_first) / med(b_first):8.2f}")
    print(f"{'prompt -> turn complete':28}{med(b_total):10.1f}{med(h_total):10.1f}{med(h_total) / med(b_total):8.2f}")
    print(f"first prompt of a session, sandbox spawn + clone + agent boot included: {cold_s * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
