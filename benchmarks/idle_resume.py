"""What an idle stop costs and what it frees: a resumed session's first answer versus a warm one's,
and the memory of an idle session's sandbox before and after its idle stop.

A real jupyter-server with the extension and a local sandbox, the real Claude Code CLI against the
fake API. Warm: the sandbox is live (prompts a moment apart). Resumed: each prompt comes after the
sandbox was stopped as idle, so it pays for a fresh sandbox (spawn, clone, CLI start) and for the
CLI loading the conversation with ``--resume``. Fresh: a new session's first prompt, which pays for
the sandbox but has nothing to resume; resumed over fresh is what resuming itself costs. All are
timed from POSTing the prompt to the first ``delta`` frame of the answer, to its
``execution_complete`` event, and to the sandbox's ``ready`` status. Memory is the sum over the
sandbox's processes (bubblewrap, daemon, Claude Code) of RSS and of PSS (shared pages split
between the processes that share them), read from /proc.

    .venv/bin/python benchmarks/idle_resume.py [--runs 5] [--idle-timeout-s 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from bench_repo import make_repo
from cloudws_sandbox.procs import kill_marked, marked_processes
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text
from jupyter_cloudws.testing.server import ServerProcess

PAUSE_S = 0.2  # rest before each warm prompt, as in prompt_latency.py
REPLY = "Pong: " + "the quick brown fox jumps over the lazy dog. " * 4


def memory_kb(sandboxes_dir: Path) -> tuple[int, int, int]:
    """(process count, summed RSS, summed PSS) of every process of the sandboxes under the dir."""
    pids = marked_processes(str(sandboxes_dir))
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except (OSError, ValueError):
            continue  # gone meanwhile
    return len(pids), rss, pss


def prompt(client: Any, ws: ClientConnection, sid: str, n: int) -> tuple[float, float, float]:
    """POST one prompt; seconds to its first text delta, to its completion, and to the sandbox
    being ready (0 when it was ready already)."""
    t0 = time.perf_counter()
    mid = client.post(f"/sessions/{sid}/prompts", json={"text": f"bench ping {n}"}).json()["message_id"]
    t_first = t_ready = float("nan")
    while True:
        frame = json.loads(ws.recv(timeout=120))
        event = frame.get("event") or {}
        if t_first != t_first and frame["type"] == "delta" and frame["message_id"] == mid:
            t_first = time.perf_counter() - t0
        if event.get("type") == "sandbox_status" and event["status"] == "ready":
            t_ready = time.perf_counter() - t0
        if event.get("type") == "execution_complete":
            assert event["message_id"] == mid and event["success"], frame
            return t_first, time.perf_counter() - t0, 0.0 if t_ready != t_ready else t_ready


def wait_for_idle_stop(ws: ClientConnection, timeout_s: float) -> None:
    while True:
        frame = json.loads(ws.recv(timeout=timeout_s))
        event = frame.get("event") or {}
        if event.get("type") == "sandbox_status" and event["status"] == "stopped":
            assert event["detail"].startswith("idle:"), event
            return


def run(fake: FakeAnthropic, root: Path, runs: int, idle_timeout_s: float) -> dict[str, Any]:
    repo = make_repo(root)
    sandbox_env = {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": "sk-bench", "CLAUDE_CODE_MAX_RETRIES": "0"}
    config = {"sandbox_env": sandbox_env, "sandbox_idle_timeout_s": idle_timeout_s, "local_repo_roots": [str(root)]}
    server = ServerProcess(root / "server", cloudws_config=config).start()
    sandboxes = root / "server" / "data" / "cloudws" / "sandboxes"
    out: dict[str, Any] = {"warm": [], "resumed": [], "fresh": []}

    @contextmanager
    def subscribe(sid: str) -> Iterator[ClientConnection]:
        url = server.api_url.replace("http", "ws", 1) + f"/sessions/{sid}/ws"
        with connect(url, additional_headers=server.headers, max_size=None) as ws:
            ws.send(json.dumps({"type": "subscribe"}))
            ws.recv()
            yield ws

    try:
        with server.client() as client:
            for n in range(runs + 1):  # fresh: a new session's first prompt, nothing to resume
                sid = client.post("/sessions", json={"repo": str(repo)}).json()["id"]
                with subscribe(sid) as ws:
                    timings = prompt(client, ws, sid, 0)
                    wait_for_idle_stop(ws, idle_timeout_s + 60)
                if n:  # the server's very first sandbox also warms the server up: not counted
                    out["fresh"].append(timings)
            sid = client.post("/sessions", json={"repo": str(repo)}).json()["id"]
            with subscribe(sid) as ws:
                prompt(client, ws, sid, 0)  # spawn, clone, agent boot
                for n in range(1, runs + 1):  # warm: the sandbox is live
                    time.sleep(PAUSE_S)
                    out["warm"].append(prompt(client, ws, sid, n))
                # The session is idle now; its sandbox lives until the idle stop.
                time.sleep(PAUSE_S)
                out["memory_idle"] = memory_kb(sandboxes)
                wait_for_idle_stop(ws, idle_timeout_s + 60)
                time.sleep(PAUSE_S)  # processes reaped
                out["memory_stopped"] = memory_kb(sandboxes)
                for n in range(runs + 1, 2 * runs + 1):  # resumed: a fresh sandbox after each idle stop
                    out["resumed"].append(prompt(client, ws, sid, n))
                    wait_for_idle_stop(ws, idle_timeout_s + 60)
            history = fake.main_requests()[-1]["body"]["messages"]
            out["turns_sent_last"] = sum(1 for m in history if m["role"] == "assistant")
    finally:
        server.stop()
        kill_marked(str(sandboxes))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-timeout-s", type=float, default=2.0)
    args = parser.parse_args()
    with FakeAnthropic() as fake, tempfile.TemporaryDirectory(prefix="cloudws-bench-") as tmp:
        fake.on("bench ping", text(REPLY))
        r = run(fake, Path(tmp), args.runs, args.idle_timeout_s)

    def med_ms(pairs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(p[i] for p in pairs) * 1000

    print(f"idle stop and resume, median of {args.runs} runs each (ms), idle timeout {args.idle_timeout_s:g} s")
    print("warm: the sandbox is live; fresh: a new session's first prompt; resumed: after an idle stop")
    print(f"{'':28}{'warm':>10}{'fresh':>10}{'resumed':>10}{'res/warm':>10}{'res/fresh':>10}")
    for i, label in enumerate(("prompt -> first text delta", "prompt -> turn complete", "prompt -> sandbox ready")):
        warm, fresh, resumed = med_ms(r["warm"], i), med_ms(r["fresh"], i), med_ms(r["resumed"], i)
        ratio = f"{resumed / warm:10.2f}" if warm else f"{'-':>10}"
        print(f"{label:28}{warm:10.1f}{fresh:10.1f}{resumed:10.1f}{ratio}{resumed / fresh:10.2f}")
    print(f"the last resumed request carried {r['turns_sent_last']} earlier assistant turns")
    (n_idle, rss_idle, pss_idle), (n_stopped, rss_stopped, pss_stopped) = r["memory_idle"], r["memory_stopped"]
    print("memory of the idle session's sandbox processes")
    print(f"{'':28}{'processes':>10}{'RSS MB':>10}{'PSS MB':>10}")
    print(f"{'before the idle stop':28}{n_idle:10d}{rss_idle / 1024:10.1f}{pss_idle / 1024:10.1f}")
    print(f"{'after the idle stop':28}{n_stopped:10d}{rss_stopped / 1024:10.1f}{pss_stopped / 1024:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
