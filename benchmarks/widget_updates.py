"""What the chat widget sends to the browser: incremental upserts versus resending the whole
transcript on every change (what a plain synced ``List`` trait would do), over the same events.

A synthetic session: prompts, each with tool calls (running, then completed), an answer streamed
in deltas (re-rendered every ``--render-every`` deltas, as the widget's throttle does), a commit
and a result. Both sides fold the same events with the same Transcript; only what is sent differs.

    .venv/bin/python benchmarks/widget_updates.py [--prompts 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from jupyter_cloudws.widget.transcript import Transcript

ANSWER = (
    "I changed **parser.py** so that empty lines are skipped.\n\n| file | change |\n|---|---|\n"
    "| parser.py | skip blanks |\n\n```python\nfor line in lines:\n    if not line.strip():\n        continue\n```\n"
) * 3


def session_events(prompts: int, tools: int) -> Iterator[tuple[str, dict[str, Any]]]:
    seq = 0

    def ev(type_: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        nonlocal seq
        seq += 1
        return "event", {"seq": seq, "ts": float(seq), "type": type_, **fields}

    for p in range(prompts):
        mid = f"m{p}"
        yield ev("user_message", message_id=mid, text=f"Change {p}", author={"name": "Ada"})
        for t in range(tools):
            call = dict(message_id=mid, call_id=f"c{p}-{t}", tool="Read", input={"file_path": f"src/f{t}.py"})
            yield ev("tool_call", status="running", **call)
            yield ev("tool_call", status="completed", output="x = 1\n" * 40, duration_ms=12, **call)
        words = ANSWER.split(" ")
        for i in range(0, len(words), 3):
            yield "delta", {"message_id": mid, "index": 1, "text": " ".join(words[i : i + 3]) + " "}
        yield ev("assistant_text", message_id=mid, text=ANSWER, index=1)
        yield ev("git", branch="cloudws/x", sha="0123456789", pushed=True, committed=True, message_id=mid)
        yield ev("execution_complete", message_id=mid, success=True, usage={}, cost_usd=0.01, duration_ms=900)


def run(events: list[tuple[str, dict[str, Any]]], render_every: int, whole: bool) -> tuple[int, int, float]:
    """(messages, bytes, seconds) sent for ``events``: upserts, or the whole list each time."""
    t = Transcript()
    messages = sent_bytes = deltas = 0
    started = time.perf_counter()
    for kind, payload in events:
        if kind == "event":
            changed = t.apply(payload)
        else:
            t.apply_delta(payload["message_id"], payload["index"], payload["text"])
            deltas += 1
            changed = t.render_streaming() if deltas % render_every == 0 else []
        if not changed:
            continue
        body = t.items if whole else changed
        sent_bytes += len(json.dumps({"type": "upsert", "items": body}))
        messages += 1
    return messages, sent_bytes, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--tools", type=int, default=8)
    parser.add_argument("--render-every", type=int, default=4, help="deltas per re-render while streaming")
    args = parser.parse_args()
    events = list(session_events(args.prompts, args.tools))
    inc_msgs, inc_bytes, inc_s = run(events, args.render_every, whole=False)
    whole_msgs, whole_bytes, whole_s = run(events, args.render_every, whole=True)
    print(f"{len(events)} stream frames, {args.prompts} prompts x {args.tools} tool calls")
    print(f"{'':24}{'upserts':>14}{'whole list':>14}{'ratio':>9}")
    print(f"{'messages':24}{inc_msgs:>14}{whole_msgs:>14}{whole_msgs / inc_msgs:>9.2f}")
    print(f"{'bytes sent':24}{inc_bytes:>14,}{whole_bytes:>14,}{whole_bytes / inc_bytes:>9.1f}")
    print(f"{'kernel time (s)':24}{inc_s:>14.3f}{whole_s:>14.3f}{whole_s / inc_s:>9.1f}")
    print(f"bytes per update: {inc_bytes / inc_msgs:,.0f} (upserts) vs {whole_bytes / whole_msgs:,.0f} (whole list)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
