"""Memory the sandbox daemon spends on its event log: the whole log held as a list of event dicts
(the old ``EventLog.events``, baseline) versus the index of seq and file offset it keeps now; and
the peak while a hub's replay of the whole log is read (one list versus streamed from disk).

A synthetic log of ``--events`` events shaped like a session's (tool calls with input and output,
assistant text, statuses), written once to a temporary directory; both sides read the same file.

    PYTHONPATH=sandbox .venv/bin/python benchmarks/eventlog_memory.py [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloudws_sandbox.eventlog import EventLog


def synthetic_event(seq: int) -> dict[str, Any]:
    base = {"seq": seq, "ts": 1_700_000_000.0 + seq, "message_id": f"m{seq // 20}"}
    kind = seq % 4
    if kind == 0:
        return {**base, "type": "assistant_text", "index": 1, "text": f"Changed parser.py line {seq}. " * 8}
    if kind == 1:
        return {**base, "type": "tool_call", "call_id": f"c{seq}", "tool": "Read", "status": "running",
                "input": {"file_path": f"src/module_{seq % 50}.py"}}  # fmt: skip
    if kind == 2:
        return {**base, "type": "tool_call", "call_id": f"c{seq - 1}", "tool": "Read", "status": "completed",
                "input": {"file_path": f"src/module_{seq % 50}.py"}, "output": "def f():\n    return 1\n" * 10,
                "duration_ms": 12}  # fmt: skip
    return {**base, "type": "sandbox_status", "status": "ready", "detail": "on branch cloudws/abc"}


def measure(build: Callable[[], Any]) -> tuple[int, int, Any]:
    """(bytes still held by what ``build`` returns, peak bytes while building, the result)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = build()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, peak - before, result


def old_load(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def replay_as_list(events: list[dict[str, Any]]) -> int:
    """The old replay: ``after(0)`` sliced the whole log, a frame per event went into the
    unbounded outbox, and the writer moved them into the transport's buffer without waiting for
    the socket (it drained only when the outbox was empty): a slow hub had all of it buffered."""
    backlog = events[0:]
    outbox = [{"kind": "event", "event": e} for e in backlog]
    transport = bytearray()
    for frame in outbox:
        transport += (json.dumps(frame, separators=(",", ":")) + "\n").encode()
    return len(transport)


def replay_streamed(log: EventLog) -> int:
    """Now: read from disk and written a frame at a time as the socket takes them."""
    return sum(len(json.dumps({"kind": "event", "event": e}, separators=(",", ":"))) for e in log.read_after(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for seq in range(1, args.events + 1):
                fh.write(json.dumps(synthetic_event(seq), separators=(",", ":")) + "\n")
        file_bytes = path.stat().st_size

        old_held, old_peak, events = measure(lambda: old_load(path))
        _, old_replay_peak, _ = measure(lambda: replay_as_list(events))
        events.clear()  # free the baseline before measuring the index
        new_held, new_peak, log = measure(lambda: EventLog(path))
        _, new_replay_peak, _ = measure(lambda: replay_streamed(log))
        log.close()

    mib = 1024 * 1024
    print(f"event log: {args.events} events, {file_bytes / mib:.1f} MiB on disk")
    print(f"held by the log        list of dicts (baseline) {old_held / mib:8.1f} MiB   "
          f"index {new_held / mib:6.2f} MiB   ratio {old_held / max(new_held, 1):6.0f}x")
    print(f"peak while loading     list of dicts (baseline) {old_peak / mib:8.1f} MiB   "
          f"index {new_peak / mib:6.2f} MiB   ratio {old_peak / max(new_peak, 1):6.0f}x")
    print(f"peak during a replay   buffered (baseline)      {old_replay_peak / mib:8.1f} MiB   "
          f"streamed {new_replay_peak / mib:6.2f} MiB   ratio {old_replay_peak / max(new_replay_peak, 1):6.0f}x")


if __name__ == "__main__":
    main()
