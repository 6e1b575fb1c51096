"""Events folded into the items the chat widget shows. Pure: no widgets, no I/O, no clock.

Each item is a JSON-able dict with a stable ``id``, so the front end can update it in place:

* ``user``       ``u:<message_id>``: a prompt as sent (``queued`` until work on it starts)
* ``assistant``  ``a:<message_id>:<index>``: rendered markdown; ``streaming`` while deltas arrive
* ``tool``       ``t:<call_id>``: one tool call with its summary, input, output and state
* ``result``     ``r:<message_id>``: how the prompt ended, with cost and duration
* ``git``        ``g:<message_id>``: the commit and push after the prompt, and the files it
  changed (``files``, ``files_total``, ``additions``, ``deletions``; None from an older hub)
* ``notice``     ``n:<seq>``: a sandbox failure or a hub error worth showing in line
* ``progress``   ``p:<seq>``: one spawn's steps (image, start, clone or restore, setup, agent) as
  they run, keyed by the seq of its first ``sandbox_progress`` event; ``state`` is ``running``
  until the sandbox is ``ready`` (or ``failed``)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .markdown import render_markdown
from .review import git_files, pull_request_badge
from .tools import group_words, tool_icon, tool_summary

Item = dict[str, Any]
MAX_INPUT_CHARS = 20_000
MAX_STEP_OUTPUT_CHARS = 20_000  # a step's streamed output kept in the widget (its end): the item is resent per batch


@dataclass
class Transcript:
    render: Callable[[str], str] = render_markdown
    items: list[Item] = field(default_factory=list)
    last_seq: int = 0
    sandbox_status: str = "stopped"
    sandbox_detail: str = ""
    _positions: dict[str, int] = field(default_factory=dict)
    _partial: dict[str, str] = field(default_factory=dict)
    _pending: list[str] = field(default_factory=list)  # prompts without a result, in order
    _dirty: set[str] = field(default_factory=set)  # streaming blocks grown since last rendered
    _spawn: str | None = None  # the progress item of the spawn under way, if one is
    pull_request: dict[str, Any] | None = None  # the header's badge: the latest pull_request event

    # -- state the widget shows beside the items ---------------------------------------------

    @property
    def working(self) -> bool:
        return bool(self._pending)

    @property
    def running_message_id(self) -> str | None:
        return self._pending[0] if self._pending else None

    # -- folding ------------------------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> list[Item]:
        """Fold one event in; return the items it added or changed (none for a replayed seq)."""
        seq = int(event.get("seq") or 0)
        if seq and seq <= self.last_seq:
            return []
        self.last_seq = max(self.last_seq, seq)
        handler = getattr(self, "_on_" + str(event.get("type")), None)
        return handler(event) if handler else []

    def apply_delta(self, message_id: str, index: int, text: str) -> list[Item]:
        """Grow a streaming block of text. Rendering waits for :meth:`render_streaming`, so
        the caller decides how often a growing block is rendered again."""
        item_id = f"a:{message_id}:{index}"
        existing = self.get(item_id)
        if existing is not None and not existing.get("streaming"):
            return []  # the final text is already here: a late delta changes nothing
        self._partial[item_id] = self._partial.get(item_id, "") + text
        self._dirty.add(item_id)
        return self._started(message_id)

    def render_streaming(self) -> list[Item]:
        """The streaming blocks that grew since the last call, rendered as they stand."""
        changed = []
        for item_id in sorted(self._dirty, key=lambda i: self._positions.get(i, len(self.items))):
            if item_id not in self._partial:
                continue  # finished meanwhile: its final item was already returned
            _, message_id, index = item_id.split(":")
            changed.append(self._upsert({
                "id": item_id, "kind": "assistant", "message_id": message_id, "index": int(index),
                "html": self.render(self._partial[item_id]), "streaming": True,
            }))  # fmt: skip
        self._dirty.clear()
        return changed

    def get(self, item_id: str) -> Item | None:
        pos = self._positions.get(item_id)
        return None if pos is None else self.items[pos]

    # -- one handler per event type ----------------------------------------------------------

    def _on_user_message(self, e: dict[str, Any]) -> list[Item]:
        mid = e["message_id"]
        if mid not in self._pending:
            self._pending.append(mid)
        author = e.get("author") or {}
        return [self._upsert({
            "id": f"u:{mid}", "kind": "user", "message_id": mid, "text": e["text"],
            "author": author.get("name") or author.get("username") or "You", "model": e.get("model"),
            "ts": e.get("ts"), "queued": len(self._pending) > 1,
        })]  # fmt: skip

    def _on_assistant_text(self, e: dict[str, Any]) -> list[Item]:
        mid, index = e["message_id"], int(e.get("index") or 0)
        item_id = f"a:{mid}:{index}"
        self._partial.pop(item_id, None)
        return self._started(mid) + [self._upsert({
            "id": item_id, "kind": "assistant", "message_id": mid, "index": index,
            "html": self.render(e["text"]), "streaming": False, "ts": e.get("ts"),
        })]  # fmt: skip

    def _on_tool_call(self, e: dict[str, Any]) -> list[Item]:
        mid, tool = e["message_id"], str(e["tool"])
        item_id = f"t:{e['call_id']}"
        before = self.get(item_id) or {}
        tool_input = e.get("input") if isinstance(e.get("input"), dict) else {}
        input_json = json.dumps(tool_input, indent=2, ensure_ascii=False)
        if len(input_json) > MAX_INPUT_CHARS:
            input_json = input_json[:MAX_INPUT_CHARS] + "\n…"
        return self._started(mid) + [self._upsert({
            "id": item_id, "kind": "tool", "message_id": mid, "tool": tool, "icon": tool_icon(tool),
            "summary": tool_summary(tool, tool_input), "group_words": group_words(tool), "input": input_json, "output": e.get("output"),
            "status": e.get("status") or "running", "started_ts": before.get("started_ts") or e.get("ts"),
            "duration_ms": e.get("duration_ms"),
        })]  # fmt: skip

    def _on_execution_complete(self, e: dict[str, Any]) -> list[Item]:
        mid = e["message_id"]
        if mid in self._pending:
            self._pending.remove(mid)
        changed = self._started(mid) + [self._upsert({
            "id": f"r:{mid}", "kind": "result", "message_id": mid, "success": bool(e["success"]),
            "error": e.get("error"), "interrupted": bool(e.get("interrupted")), "cost_usd": e.get("cost_usd"),
            "duration_ms": e.get("duration_ms"), "ts": e.get("ts"),
        })]  # fmt: skip
        # Streaming blocks the final event never closed (an interrupt mid-text) stop streaming.
        for item_id in [i for i in self._partial if i.startswith(f"a:{mid}:")]:
            text = self._partial.pop(item_id)
            changed.append(self._upsert({
                "id": item_id, "kind": "assistant", "message_id": mid, "index": int(item_id.rsplit(":", 1)[1]),
                "html": self.render(text), "streaming": False,
            }))  # fmt: skip
        # Tool calls left running by an interrupt are over too.
        for item in self.items:
            if item["kind"] == "tool" and item["message_id"] == mid and item["status"] == "running":
                changed.append(self._upsert({**item, "status": "error", "output": item.get("output") or "stopped"}))
        return changed

    def _on_git(self, e: dict[str, Any]) -> list[Item]:
        if not e.get("committed") and not e.get("error"):
            return []  # nothing changed: no line for it
        key = e.get("message_id") or e.get("seq")
        return [self._upsert({
            "id": f"g:{key}", "kind": "git", "message_id": e.get("message_id"), "branch": e["branch"],
            "sha": str(e.get("sha") or "")[:10], "pushed": bool(e.get("pushed")), "error": e.get("error"),
            **git_files(e),
        })]  # fmt: skip

    def _on_pull_request(self, e: dict[str, Any]) -> list[Item]:
        badge = pull_request_badge(e)
        if badge is not None:
            self.pull_request = badge
        return []  # shown in the header, not in line

    def _on_sandbox_status(self, e: dict[str, Any]) -> list[Item]:
        self.sandbox_status = e["status"]
        self.sandbox_detail = e.get("detail") or ""
        changed = []
        if e["status"] in ("ready", "failed", "stopped") and self._spawn is not None:
            # The spawn is over: its block folds to one line (unless a step failed).
            spawn = self.get(self._spawn)
            self._spawn = None
            if spawn is not None:
                state = "ready" if e["status"] == "ready" else "failed"
                changed.append(self._upsert({**spawn, "state": state}))
        if e["status"] != "failed":
            return changed
        return changed + [self._upsert({"id": f"n:{e.get('seq')}", "kind": "notice", "level": "error",
                                        "text": f"The sandbox failed: {self.sandbox_detail}"})]  # fmt: skip

    def _on_sandbox_progress(self, e: dict[str, Any]) -> list[Item]:
        spawn = self.get(self._spawn) if self._spawn is not None else None
        if spawn is None:
            self._spawn = f"p:{e.get('seq')}"
            spawn = {"id": self._spawn, "kind": "progress", "state": "running", "steps": []}
        name, state = str(e.get("step")), str(e.get("state"))
        steps = [dict(s) for s in spawn["steps"]]
        step = next((s for s in steps if s["step"] == name), None)
        if step is None:
            step = {"step": name, "output": "", "tail": ""}
            steps.append(step)
        output = str(e.get("output") or "")
        if state == "running":
            # Running events carry the new lines; the failed event carries the last ones.
            step["output"] = (step["output"] + output)[-MAX_STEP_OUTPUT_CHARS:]
        elif state == "failed":
            step["tail"] = output
        elapsed_ms = int(e.get("elapsed_ms") or 0)
        step.update(state=state, elapsed_ms=elapsed_ms)
        if e.get("ts"):  # a running step's time ticks on in the widget from here
            step["started_ts"] = float(e["ts"]) - elapsed_ms / 1000
        if e.get("detail") or state != "running":
            step["detail"] = str(e.get("detail") or "")
        return [self._upsert({**spawn, "steps": steps, "total_ms": sum(s["elapsed_ms"] for s in steps)})]

    def _on_error(self, e: dict[str, Any]) -> list[Item]:
        return [self._upsert({"id": f"n:{e.get('seq')}", "kind": "notice", "level": "error",
                              "text": f"{e.get('code')}: {e.get('message')}"})]  # fmt: skip

    # -- internals ---------------------------------------------------------------------------

    def _started(self, message_id: str) -> list[Item]:
        """Work on a prompt began (or it ended): it is no longer queued."""
        user = self.get(f"u:{message_id}")
        if user is None or not user.get("queued"):
            return []
        return [self._upsert({**user, "queued": False})]

    def _upsert(self, item: Item) -> Item:
        pos = self._positions.get(item["id"])
        if pos is None:
            self._positions[item["id"]] = len(self.items)
            self.items.append(item)
        else:
            self.items[pos] = item
        return item
