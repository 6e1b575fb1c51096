"""Claude Code's stream-json output, turned into jupyter_cloudws events. Pure: no I/O, no clock.

Feed it one parsed stdout line at a time with the current time; it returns what to emit:
event bodies to log, ``Delta`` fragments to stream (never logged) and a ``BlockEnd`` after a
streamed block's last one, and a ``TurnEnd`` when the ``result`` line closes the turn. One
``Normalizer`` lives as long as the agent process; call :meth:`begin` at the start of each prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .protocol import AssistantText, EventBody, ToolCall

DEFAULT_MAX_OUTPUT_CHARS = 64_000


@dataclass(frozen=True)
class Delta:
    message_id: str
    index: int
    text: str


@dataclass(frozen=True)
class BlockEnd:
    """A streamed text block is complete: whatever of it was held back may now be shown."""

    message_id: str
    index: int


@dataclass(frozen=True)
class TurnEnd:
    """The agent finished (or abandoned) the turn; the daemon commits, then reports completion."""

    success: bool
    error: str | None
    cost_usd: float | None
    usage: dict[str, Any]
    duration_ms: int | None
    session_id: str | None
    result_text: str | None


Output = EventBody | Delta | BlockEnd | TurnEnd


@dataclass
class _OpenCall:
    tool: str
    input: dict[str, Any]
    started_s: float


@dataclass
class Normalizer:
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    message_id: str = ""
    agent_session_id: str | None = None
    model: str | None = None  # the model the agent reported at the start of its latest turn
    _text_blocks: int = 0
    _streaming_index: int | None = None
    _open_calls: dict[str, _OpenCall] = field(default_factory=dict)

    def begin(self, message_id: str) -> None:
        self.message_id = message_id
        self._text_blocks = 0
        self._streaming_index = None
        self._open_calls.clear()

    def feed(self, line: dict[str, Any], now_s: float) -> list[Output]:
        kind = line.get("type")
        if kind == "system" and line.get("subtype") == "init":
            self.agent_session_id = line.get("session_id") or self.agent_session_id
            self.model = line.get("model") or self.model
            return []
        if line.get("parent_tool_use_id"):
            return []  # a sub-agent's inner messages: its Task tool_call row stands for it
        if kind == "stream_event":
            return self._stream_event(line.get("event") or {})
        if kind == "assistant":
            return self._assistant(line.get("message") or {}, now_s)
        if kind == "user":
            return self._tool_results(line, now_s)
        if kind == "result":
            return [self._result(line)]
        return []

    def abandon(self, reason: str, now_s: float) -> list[Output]:
        """The agent died mid-turn: close every open tool call as an error, then end the turn."""
        out: list[Output] = [
            self._finish_call(call_id, reason, is_error=True, now_s=now_s) for call_id in list(self._open_calls)
        ]
        out.append(TurnEnd(False, reason, None, {}, None, self.agent_session_id, None))
        return out

    # -- line kinds -------------------------------------------------------------------------

    def _stream_event(self, event: dict[str, Any]) -> list[Output]:
        etype = event.get("type")
        if etype == "content_block_start" and (event.get("content_block") or {}).get("type") == "text":
            self._streaming_index = self._text_blocks + 1
        elif etype == "content_block_delta" and self._streaming_index is not None:
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [Delta(self.message_id, self._streaming_index, delta["text"])]
        elif etype == "content_block_stop" and self._streaming_index is not None:
            index, self._streaming_index = self._streaming_index, None
            return [BlockEnd(self.message_id, index)]
        return []

    def _assistant(self, message: dict[str, Any], now_s: float) -> list[Output]:
        out: list[Output] = []
        for block in message.get("content") or []:
            btype = block.get("type")
            if btype == "text" and block.get("text", "").strip():
                self._text_blocks += 1
                out.append(AssistantText(self.message_id, block["text"], self._text_blocks))
            elif btype == "tool_use":
                call_id = str(block.get("id"))
                tool = str(block.get("name"))
                tool_input = block.get("input") if isinstance(block.get("input"), dict) else {}
                self._open_calls[call_id] = _OpenCall(tool, tool_input, now_s)
                out.append(ToolCall(self.message_id, call_id, tool, tool_input, "running"))
        return out

    def _tool_results(self, line: dict[str, Any], now_s: float) -> list[Output]:
        content = (line.get("message") or {}).get("content")
        if not isinstance(content, list):
            return []
        out: list[Output] = []
        for block in content:
            if block.get("type") != "tool_result":
                continue
            call_id = str(block.get("tool_use_id"))
            text = _result_text(block.get("content"))
            out.append(self._finish_call(call_id, text, is_error=bool(block.get("is_error")), now_s=now_s))
        return out

    def _finish_call(self, call_id: str, output: str, *, is_error: bool, now_s: float) -> ToolCall:
        opened = self._open_calls.pop(call_id, None) or _OpenCall("unknown", {}, now_s)
        return ToolCall(
            self.message_id,
            call_id,
            opened.tool,
            opened.input,
            "error" if is_error else "completed",
            truncate(output, self.max_output_chars),
            int((now_s - opened.started_s) * 1000),
        )

    def _result(self, line: dict[str, Any]) -> TurnEnd:
        self.agent_session_id = line.get("session_id") or self.agent_session_id
        is_error = bool(line.get("is_error")) or line.get("subtype") != "success"
        error = None
        if is_error:
            detail = line.get("result") or ", ".join(map(str, line.get("errors") or [])) or ""
            # An API error ends the turn with subtype "success" and is_error: the text says it all.
            subtype = line.get("subtype") or "error"
            error = detail or subtype if subtype == "success" else f"{subtype}: {detail}".rstrip(": ")
        return TurnEnd(
            success=not is_error,
            error=error,
            cost_usd=line.get("total_cost_usd"),
            usage=line.get("usage") or {},
            duration_ms=line.get("duration_ms"),
            session_id=self.agent_session_id,
            result_text=line.get("result"),
        )


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, dict) and item.get("type") == "text":
                parts.append(str(item.get("text", "")))
            elif isinstance(item, dict) and item.get("type") == "image":
                parts.append("[image]")
        return "\n".join(parts)
    return "" if content is None else json.dumps(content)


def truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"\n… ({len(text) - max_chars} more characters not shown)"
