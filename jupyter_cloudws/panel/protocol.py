"""The frames of the panel's WebSocket (``{base_url}cloudws/api/panel``): the one definition.

Pure: no I/O. JSON text frames. The browser sends ``{"type": "msg", "content": {...}}`` where
``content`` is exactly what chat.js passes to ``model.send``; the server answers with a ``hello``
first (the chat's whole state and the Pygments CSS), then ``state`` (changed traits), ``msg``
(what the notebook widget would send over its comm) and ``error`` frames. A bad frame from the
browser gets an ``error`` frame and changes nothing; the connection stays open. See
docs/protocol.md.
"""

from __future__ import annotations

import json
from typing import Any

MAX_FRAME_BYTES = 1024 * 1024  # a browser frame larger than this is refused (a prompt is far smaller)

# What chat.js sends; every other content type is refused.
MESSAGE_TYPES = frozenset({
    "send", "stop", "typing", "list_sessions", "open_session", "new_session", "rename", "archive",
    "diff", "pr_draft", "pr_create", "pr_poll", "github_repos", "github_branches", "warm_repo",
})  # fmt: skip
# Messages that change something (or start a sandbox): they need ``write`` on ``cloudws``;
# the others only read and need the ``read`` that opening the socket asked for.
WRITE_MESSAGE_TYPES = frozenset({"send", "stop", "typing", "new_session", "rename", "archive", "pr_create", "warm_repo"})


class BadFrame(Exception):
    """A browser frame the panel refuses; ``code`` and ``message`` go back in an error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_frame(self) -> dict[str, Any]:
        return error_frame(self.code, self.message)


def parse_browser_frame(raw: str | bytes) -> dict[str, Any]:
    """The ``content`` of a browser's ``msg`` frame; raises :class:`BadFrame` for anything else."""
    if isinstance(raw, bytes):
        raise BadFrame("bad_frame", "binary frames are not accepted: send JSON text")
    size_bytes = len(raw.encode("utf-8", "surrogatepass"))
    if size_bytes > MAX_FRAME_BYTES:
        raise BadFrame("too_large", f"a frame may hold at most {MAX_FRAME_BYTES} bytes, this one has {size_bytes}")
    try:
        frame = json.loads(raw)
    except ValueError as exc:
        raise BadFrame("bad_frame", f"the frame is not valid JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise BadFrame("bad_frame", "a frame must be a JSON object")
    if frame.get("type") != "msg":
        raise BadFrame("unknown_type", f"unknown frame type {frame.get('type')!r}: the panel takes only 'msg'")
    content = frame.get("content")
    if not isinstance(content, dict):
        raise BadFrame("bad_frame", "a msg frame's 'content' must be a JSON object")
    kind = content.get("type")
    if kind not in MESSAGE_TYPES:
        raise BadFrame("unknown_type", f"unknown message type {kind!r}; known: {', '.join(sorted(MESSAGE_TYPES))}")
    return content


def needs_write(content: dict[str, Any]) -> bool:
    return content.get("type") in WRITE_MESSAGE_TYPES


def hello_frame(version: str, state: dict[str, Any], css: str) -> dict[str, Any]:
    return {"type": "hello", "version": version, "state": state, "css": css}


def state_frame(changes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "state", "changes": changes}


def msg_frame(content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "msg", "content": content}


def error_frame(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def dumps(frame: dict[str, Any]) -> str:
    """A frame as sent: compact JSON (state values are plain JSON: dicts, lists, strings, numbers)."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
