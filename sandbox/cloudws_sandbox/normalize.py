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

from .protocol import BRIDGE_MAX_LINE_BYTES, AssistantText, EventBody, ToolCall, dumps

DEFAULT_MAX_OUTPUT_CHARS = 64_000
DEFAULT_MAX_INPUT_CHARS = 64_000  # per string in a tool's input (a Write's content, an Edit's text)
DEFAULT_MAX_TEXT_CHARS = 256_000  # one block of assistant text
# A whole tool input, serialized, stays under this even when it holds many long strings; with
# UTF-8 at up to 4 bytes a character, a tool_call event then fits in one bridge frame with room.
MAX_INPUT_JSON_CHARS = BRIDGE_MAX_LINE_BYTES // 16


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
    """Turns the agent's lines into events, each small enough for one bridge frame: long tool
    inputs, outputs and texts are cut here, at the source, with a visible note of what was cut."""

    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
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
                out.append(AssistantText(self.message_id, truncate(block["text"], self.max_text_chars),
                                         self._text_blocks))  # fmt: skip
            elif btype == "tool_use":
                call_id = str(block.get("id"))
                tool = str(block.get("name"))
                raw_input = block.get("input") if isinstance(block.get("input"), dict) else {}
                tool_input = cut_input(raw_input, self.max_input_chars)
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
            error = truncate(str(error), self.max_text_chars)
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


def cut_input(value: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """A tool input with every string longer than ``max_chars`` cut (with a note); if the whole
    is still too large to send, a preview of it in its place, so no event outgrows a frame."""
    cut = _cut_strings(value, max_chars)
    text = dumps(cut)
    if len(text) <= MAX_INPUT_JSON_CHARS:
        return cut
    return {"truncated_input": truncate(text, max_chars)}


def _cut_strings(value: Any, max_chars: int) -> Any:
    if isinstance(value, str):
        return truncate(value, max_chars)
    if isinstance(value, dict):
        return {str(k): _cut_strings(v, max_chars) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_strings(v, max_chars) for v in value]
    return value


def truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"\n… ({len(text) - max_chars} more characters not shown)"
