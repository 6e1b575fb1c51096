"""What bubblewrap isolation adds to a session's first prompt, against the same hub without it.

For each isolation mode a real jupyter-server runs the local backend; each run creates a session
and sends its first prompt, so the sandbox is spawned, the repository cloned and Claude Code
booted. Measured from POSTing the prompt to the sandbox's first event (its ``cloning`` status:
spawn and daemon start) and to the prompt's ``execution_complete``. The modes alternate run by
run, so drift on a shared machine hits both alike; the baseline is ``isolation = "none"``.

    .venv/bin/python benchmarks/isolation_overhead.py [--runs 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench_repo import make_repo
from cloudws_sandbox.procs import kill_marked
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text
from jupyter_cloudws.testing.server import ServerProcess

MODES = ("none", "bubblewrap")


def first_prompt(client: httpx.Client, repo: Path) -> tuple[float, float]:
    """Seconds from POSTing a new session's first prompt to its first sandbox event, and to its end."""
    sid = client.post("/sessions", json={"repo": str(repo)}).json()["id"]
    t0 = time.perf_counter()
    mid = client.post(f"/sessions/{sid}/prompts", json={"text": "bench ping"}).json()["message_id"]
    first_s = None
    while True:
        events = client.get(f"/sessions/{sid}/events", params={"limit": 1000}).json()["events"]
        if first_s is None and any(e["type"] == "sandbox_status" and e["status"] == "cloning" for e in events):
            first_s = time.perf_counter() - t0
        done = [e for e in events if e["type"] == "execution_complete" and e["message_id"] == mid]
        if done:
            assert done[0]["success"], done
            total_s = time.perf_counter() - t0
            client.patch(f"/sessions/{sid}", json={"archived": True})  # ends its sandbox
            return first_s or total_s, total_s
        time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    results: dict[str, tuple[list[float], list[float]]] = {mode: ([], []) for mode in MODES}
    with FakeAnthropic() as fake, tempfile.TemporaryDirectory(prefix="cloudws-bench-") as tmp:
        fake.on("bench ping", text("Pong."))
        root = Path(tmp)
        repo = make_repo(root)
        sandbox_env = {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": "sk-bench", "CLAUDE_CODE_MAX_RETRIES": "0"}
        servers = {
            mode: ServerProcess(root / mode, cloudws_config={"sandbox_env": sandbox_env, "local_repo_roots": [str(root)]},
                                config={"LocalBackend": {"isolation": mode}}).start()
            for mode in MODES
        }  # fmt: skip
        try:
            clients = {mode: server.client() for mode, server in servers.items()}
            for mode in MODES:  # one unmeasured run each: page caches, bwrap's first start
                first_prompt(clients[mode], repo)
            for _ in range(args.runs):
                for mode in MODES:
                    first_s, total_s = first_prompt(clients[mode], repo)
                    results[mode][0].append(first_s)
                    results[mode][1].append(total_s)
        finally:
            for mode, server in servers.items():
                server.stop()
                kill_marked(str(root / mode / "data" / "cloudws" / "sandboxes"))

    def med(xs: list[float]) -> float:
        return statistics.median(xs) * 1000

    base_first, base_total = results["none"]
    iso_first, iso_total = results["bubblewrap"]
    print(f"a session's first prompt, median of {args.runs} runs (ms)")
    print(f"{'':34}{'none':>10}{'bubblewrap':>12}{'ratio':>8}")
    print(f"{'prompt -> first sandbox event':34}{med(base_first):10.1f}{med(iso_first):12.1f}"
          f"{med(iso_first) / med(base_first):8.3f}")  # fmt: skip
    print(f"{'prompt -> first prompt complete':34}{med(base_total):10.1f}{med(iso_total):12.1f}"
          f"{med(iso_total) / med(base_total):8.3f}")  # fmt: skip
    overhead = (med(iso_total) - med(base_total)) / med(base_total) * 100
    print(f"isolation adds {overhead:+.1f} % to the first prompt (goal: under 10 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
