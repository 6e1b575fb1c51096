"""A scripted fake of the Anthropic Messages API, for running Claude Code offline.

Start one, point the CLI at it with ``ANTHROPIC_BASE_URL=fake.url`` and script what
"the model" answers::

    with FakeAnthropic() as fake:
        fake.on("make a file",
                [text("I'll create it."), tool_use("Bash", {"command": "echo hi > made.txt"})],
                text("Created **made.txt**."))
        ...  # run claude with ANTHROPIC_BASE_URL=fake.url
        assert not fake.errors                       # the CLI sent only valid requests
        assert fake.main_requests()[-1]["body"]["messages"][-1]["role"] == "user"

The server is a ``ThreadingHTTPServer`` in its own daemon thread: it keeps answering
while the test's asyncio loop is busy or blocked (e.g. in ``subprocess.run``).

Reply selection depends on the conversation in the request, never on request order.
The *latest human text* is the text of the last ``user`` message that carries text
of its own: tool_result blocks do not count, nor do the wrappers the CLI injects
(``<system-reminder>``, ``<local-command-caveat>``, ``<command-name>``,
``<local-command-stdout>`` ...). The first ``on(match, *turns)`` whose ``match`` is a
substring of it answers with ``turns[k]``, where ``k`` is the number of ``assistant``
messages after that user message, so a tool round trip advances to the next turn
while retries and the non-streaming fallback get the same answer. Past the end of the
script the last turn is repeated if it is text only, else ``default_text`` ("Done.")
is sent; unmatched requests get ``default_text`` too. A turn is a ``str``, a block
(``text(...)``, ``tool_use(...)``), a list of blocks, or ``turn(*blocks, delay_s=)``.

What Claude Code 2.1.327 sends (logged against this fake, with
``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``, in ``-p`` and in
``--input-format stream-json`` mode):

* Only ``POST /v1/messages?beta=true``, the agent's always with ``"stream": true``;
  no ``HEAD /``, no ``count_tokens``, no ``/v1/models`` (all answered anyway). Headers include ``x-api-key``,
  ``anthropic-version: 2023-06-01``, ``anthropic-beta``, ``user-agent:
  claude-cli/2.1.327 (external, sdk-cli)``, ``x-claude-code-session-id``.
* Agent requests carry ``tools`` (Agent, Bash, Edit, Read, Write, Skill, ToolSearch,
  ...), ``system`` (a list of text blocks), ``thinking`` ({"type": "adaptive"}),
  ``context_management``, ``metadata``, ``output_config`` and ``max_tokens`` (32000
  for an unknown model name, 128000 for the default ``claude-opus-5-5``).
* The prompt is the last text block of the first user message, after a
  ``<system-reminder>`` block. The CLI also puts ``role: "system"`` messages inside
  ``messages`` (environment, "You are powered by the model ...") -- the real API
  accepts them (the CLI says "mid-conversation-system-2026-04-07 is generally
  available"), so this fake does too. With the default model the first request also
  carries the ``per-turn-control-2026-07-01`` beta and ``output_config`` on a message.
  (When that request is refused with a 400, the CLI resends it without system
  messages, inlining them as ``<system-reminder>`` text.)
* After an interrupt the next user message holds the synthetic tool_result, a text
  block "[Request interrupted by user for tool use]" and then the new prompt.
* Side requests: no title/summary request was seen. The one side request observed is
  the model probe after a ``set_model`` control request: non-streaming, no tools,
  ``max_tokens: 1``, one user message "Hi", system "You are Claude Code, ...".
  Requests without ``tools`` never get a scripted turn: they get ``side_text``
  (``main_requests()`` uses the same rule to pick the agent's requests).
* With ``CLAUDE_CODE_MAX_RETRIES=0`` an API error (``fail_next``) is not retried, not
  even without streaming.

Everything received is recorded in ``fake.requests`` (dicts with ``method``,
``path``, ``query``, ``headers``, ``body``, ``time``); a request breaking the
Messages contract gets a 400 ``invalid_request_error`` and is also recorded in
``fake.errors``.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterable, Union
from urllib.parse import parse_qs, urlsplit

from .loopback import LoopbackHTTPServer

__all__ = [
    "Block",
    "FakeAnthropic",
    "Turn",
    "text",
    "tool_use",
    "turn",
    "latest_human_text",
]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

_WRAPPER_RE = re.compile(
    r"<(system-reminder|local-command-caveat|local-command-stdout|local-command-stderr"
    r"|command-name|command-message|command-args)>.*?</\1>",
    re.S,
)


# --------------------------------------------------------------------------- turns


@dataclass
class Block:
    """One content block of a scripted reply: ``text`` or ``tool_use``."""

    type: str
    text: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    delay_s: float | None = None
    chunks: list[str] | None = None  # the text_delta fragments; default: split by words


@dataclass
class Turn:
    """One assistant message: its blocks, and an optional delay between chunks."""

    blocks: list[Block]
    delay_s: float | None = None
    stop_reason: str | None = None  # default: "tool_use" if any tool_use else "end_turn"

    @property
    def has_tool_use(self) -> bool:
        return any(b.type == "tool_use" for b in self.blocks)


def text(markdown: str, *, delay_s: float | None = None, chunks: list[str] | None = None) -> Block:
    """A text block, streamed as ``chunks`` when given (they must add up to ``markdown``)."""
    if chunks is not None and "".join(chunks) != markdown:
        raise ValueError("the chunks must add up to the text")
    return Block("text", text=markdown, delay_s=delay_s, chunks=chunks)


def tool_use(
    name: str, input: dict[str, Any] | None = None, *, id: str | None = None,
    delay_s: float | None = None,
) -> Block:
    """A tool_use block (``id`` defaults to a fresh ``toolu_...``)."""
    return Block("tool_use", name=name, input=dict(input or {}), id=id, delay_s=delay_s)


def turn(*blocks: Block | str, delay_s: float | None = None) -> Turn:
    """A turn of several blocks with a per-turn ``delay_s`` between streamed chunks."""
    return Turn([text(b) if isinstance(b, str) else b for b in blocks], delay_s=delay_s)


TurnLike = Union[Turn, Block, str, Iterable[Union[Block, str]]]


def _as_turn(t: TurnLike) -> Turn:
    if isinstance(t, Turn):
        return t
    if isinstance(t, Block):
        return Turn([t])
    if isinstance(t, str):
        return Turn([text(t)])
    return turn(*t)


# --------------------------------------------------------------- conversation reading


def _human_text(content: Any) -> str:
    """The human text in a user message's content ('' if only tool results)."""
    if isinstance(content, str):
        parts = [content]
    elif isinstance(content, list):
        parts = [
            b.get("text", "")
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        ]
    else:
        parts = []
    cleaned = [_WRAPPER_RE.sub("", p).strip() for p in parts if isinstance(p, str)]
    return "\n".join(p for p in cleaned if p)


def latest_human_text(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """(text of the last user message with human text, assistant messages after it)."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.get("role") == "user":
            t = _human_text(m.get("content"))
            if t:
                after = sum(1 for x in messages[i + 1:] if x.get("role") == "assistant")
                return t, after
    return "", sum(1 for x in messages if x.get("role") == "assistant")


def _validate(body: Any) -> str | None:
    """Messages API contract checks; returns an error message or None."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model: Field required"
    mt = body.get("max_tokens")
    if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
        return "max_tokens: Field required (a positive integer)"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages: Field required (a non-empty list)"
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        return "system: Input should be a valid string or list of text blocks"
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for j, t in enumerate(tools):
            if not isinstance(t, dict) or not t.get("name"):
                return f"tools.{j}.name: Field required"
    pending: set[str] = set()  # tool_use ids awaiting their tool_result
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            return f"messages.{i}: Input should be an object"
        role, content = m.get("role"), m.get("content")
        if role not in ("user", "assistant", "system"):
            return f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'"
        if isinstance(content, str):
            blocks: list[Any] = []
        elif isinstance(content, list):
            blocks = content
        else:
            return f"messages.{i}.content: Input should be a string or a list of blocks"
        for j, b in enumerate(blocks):
            if not isinstance(b, dict) or not isinstance(b.get("type"), str):
                return f"messages.{i}.content.{j}.type: Field required"
            if b["type"] == "text" and not (isinstance(b.get("text"), str) and b["text"]):
                return f"messages.{i}.content.{j}: text content blocks must be non-empty"
        results = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if role == "system":  # mid-conversation system messages: text only
            if results or any(b["type"] != "text" for b in blocks):
                return f"messages.{i}.content: system messages may only hold text blocks"
            continue
        if results and role != "user":
            return f"messages.{i}: tool_result blocks are only allowed in user messages"
        if pending and i < len(msgs):
            missing = pending - results
            if missing:
                return (
                    f"messages.{i}: `tool_use` ids were found without `tool_result` "
                    f"blocks immediately after: {', '.join(sorted(missing))}. Each "
                    "`tool_use` block must have a corresponding `tool_result` block "
                    "in the next message."
                )
        stray = results - pending
        if stray:
            return (
                f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {', '.join(sorted(map(str, stray)))}. Each `tool_result` block "
                "must have a corresponding `tool_use` block in the previous message."
            )
        pending = (
            {b.get("id") for b in blocks if b.get("type") == "tool_use"}
            if role == "assistant" else set()
        )
    return None


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18).replace("-", "a").replace("_", "b")


def _tokens(s: str) -> int:
    return max(1, len(s) // 4)


# ----------------------------------------------------------------------- the server


class FakeAnthropic:
    """A scripted Messages API on 127.0.0.1, served from a background thread."""

    def __init__(
        self, *, default_text: str = "Done.", side_text: str = "Fake side reply",
        delay_s: float = 0.0, chunk_words: int = 1,
    ) -> None:
        self.default_text = default_text
        self.side_text = side_text
        self.delay_s = delay_s
        self.chunk_words = chunk_words
        self.requests: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self._scripts: list[tuple[str, list[Turn]]] = []
        self._fail: list[int] = []  # statuses for the next main requests
        self._lock = threading.Lock()
        self._conns: set[Any] = set()  # open client sockets, closed by stop()
        self._server: LoopbackHTTPServer | None = None
        self._port: int | None = None

    # -- lifecycle
    def start(self) -> "FakeAnthropic":
        if self._server is None:
            self._server = LoopbackHTTPServer(_make_handler(self), "FakeAnthropic")
            self._port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        with self._lock:  # end keep-alive connections still parked in a handler
            conns, self._conns = list(self._conns), set()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (kept after stop(); a restart binds a new one)."""
        if self._port is None:
            raise RuntimeError("FakeAnthropic was never started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting
    def on(self, match: str, *turns: TurnLike) -> "FakeAnthropic":
        """When the latest human text contains ``match``, answer turn by turn."""
        with self._lock:
            self._scripts.append((match, [_as_turn(t) for t in turns]))
        return self

    def fail_next(self, status: int = 529, n: int = 1) -> None:
        """Answer the next ``n`` main (agent) requests with an API error."""
        with self._lock:
            self._fail.extend([status] * n)

    def main_requests(self) -> list[dict[str, Any]]:
        """Recorded /v1/messages requests of the agent itself (those with tools)."""
        with self._lock:
            return [r for r in self.requests if _is_main(r)]

    def messages_requests(self) -> list[dict[str, Any]]:
        """All recorded POST /v1/messages requests (agent and side requests)."""
        with self._lock:
            return [r for r in self.requests if r["path"] == "/v1/messages"]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.errors.clear()
            self._scripts.clear()
            self._fail.clear()

    def choose(self, body: dict[str, Any]) -> Turn:
        """The turn this fake answers to a (valid) Messages request body."""
        return _fit(self._choose(body), body["max_tokens"])

    def _choose(self, body: dict[str, Any]) -> Turn:
        if not body.get("tools"):
            return Turn([text(self.side_text)])
        human, k = latest_human_text(body["messages"])
        with self._lock:
            scripts = list(self._scripts)
        for match, turns in scripts:
            if match in human:
                if not turns:
                    break
                if k < len(turns):
                    return turns[k]
                if not turns[-1].has_tool_use:
                    return turns[-1]
                break
        return Turn([text(self.default_text)])

    # -- internals used by the handler
    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _error(self, entry: dict[str, Any], status: int, message: str) -> None:
        with self._lock:
            self.errors.append({**entry, "status": status, "message": message})

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._fail.pop(0) if self._fail else None


def _is_main(r: dict[str, Any]) -> bool:
    body = r.get("body")
    return (
        r["path"] == "/v1/messages" and isinstance(body, dict) and bool(body.get("tools"))
    )


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": _new_id("req_"),
    }


def _chunks(s: str, words: int) -> list[str]:
    pieces = re.findall(r"\s*\S+", s) or [s]
    out = ["".join(pieces[i:i + words]) for i in range(0, len(pieces), max(1, words))]
    if out and len("".join(out)) < len(s):  # trailing whitespace
        out[-1] += s[len("".join(out)):]
    return out


def _json_chunks(s: str) -> list[str]:
    n = max(1, min(4, len(s) // 8))
    size = -(-len(s) // n)
    return [""] + [s[i:i + size] for i in range(0, len(s), size)]


def _make_handler(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeAnthropic/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            with fake._lock:
                fake._conns.add(self.connection)

        def finish(self) -> None:
            with fake._lock:
                fake._conns.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        # ---- plumbing
        def _send_json(self, status: int, obj: Any, head: bool = False) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", _new_id("req_"))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _entry(self, body: Any) -> dict[str, Any]:
            parts = urlsplit(self.path)
            return {
                "method": self.command,
                "path": parts.path,
                "query": {k: v[-1] for k, v in parse_qs(parts.query).items()},
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
                "time": time.time(),
            }

        def _read_body(self) -> tuple[Any, str | None]:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            try:
                return json.loads(raw or b"null"), None
            except ValueError as e:
                return raw.decode("utf-8", "replace"), f"invalid JSON body: {e}"

        # ---- verbs
        def do_HEAD(self) -> None:
            path = urlsplit(self.path).path
            fake._record(self._entry(None))
            self._send_json(200 if path == "/" else 404, {}, head=True)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            fake._record(self._entry(None))
            if path == "/":
                self._send_json(200, {"ok": True, "fake": "anthropic"})
            else:
                self._not_found(path)

        def do_POST(self) -> None:
            body, bad_json = self._read_body()
            entry = self._entry(body)
            fake._record(entry)
            path = entry["path"]
            if path not in ("/v1/messages", "/v1/messages/count_tokens"):
                self._not_found(path)
                return
            problem = bad_json or (
                _validate(body) if path == "/v1/messages"
                else _validate({**body, "max_tokens": 1}) if isinstance(body, dict)
                else "request body must be a JSON object"
            )
            if problem:
                fake._error(entry, 400, problem)
                self._send_json(400, _error_body(400, problem))
                return
            if path == "/v1/messages/count_tokens":
                self._send_json(200, {"input_tokens": _tokens(json.dumps(body))})
                return
            if body.get("tools"):
                status = fake._take_failure()
                if status is not None:
                    self._send_json(status, _error_body(status, f"Injected {status} error"))
                    return
            reply = fake.choose(body)
            try:
                if body.get("stream"):
                    self._stream(body, reply)
                else:
                    self._send_json(200, _message(body, reply))
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def do_other(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            fake._record(self._entry(None))
            self._not_found(urlsplit(self.path).path)

        do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_other

        def _not_found(self, path: str) -> None:
            self._send_json(404, _error_body(404, f"Not found: {self.command} {path}"))

        # ---- SSE
        def _event(self, name: str, data: dict[str, Any]) -> None:
            payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        def _stream(self, body: dict[str, Any], reply: Turn) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("request-id", _new_id("req_"))
            self.end_headers()
            msg = _message(body, Turn([]))
            usage = _usage(body, reply)
            msg["usage"] = {**usage, "output_tokens": 1}
            self._event("message_start", {"type": "message_start", "message": msg})
            self._event("ping", {"type": "ping"})
            for index, block in enumerate(reply.blocks):
                delay = next(
                    (d for d in (block.delay_s, reply.delay_s, fake.delay_s) if d is not None),
                    0.0,
                )
                if block.type == "text":
                    start = {"type": "text", "text": ""}
                    deltas = [{"type": "text_delta", "text": c}
                              for c in block.chunks or _chunks(block.text, fake.chunk_words)]
                else:
                    start = {"type": "tool_use", "id": block.id or _new_id("toolu_"),
                             "name": block.name, "input": {}}
                    deltas = [{"type": "input_json_delta", "partial_json": c}
                              for c in _json_chunks(json.dumps(block.input))]
                self._event("content_block_start", {
                    "type": "content_block_start", "index": index, "content_block": start})
                for i, delta in enumerate(deltas):
                    if delay and i:
                        time.sleep(delay)
                    self._event("content_block_delta", {
                        "type": "content_block_delta", "index": index, "delta": delta})
                self._event("content_block_stop", {"type": "content_block_stop", "index": index})
            self._event("message_delta", {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            })
            self._event("message_stop", {"type": "message_stop"})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


def _stop_reason(reply: Turn) -> str:
    if reply.stop_reason:
        return reply.stop_reason
    return "tool_use" if reply.has_tool_use else "end_turn"


def _fit(reply: Turn, max_tokens: int) -> Turn:
    """Cut a text-only reply to ``max_tokens`` (as the API does, stop_reason max_tokens)."""
    if reply.has_tool_use or sum(_tokens(b.text) for b in reply.blocks) <= max_tokens:
        return reply
    budget, blocks = max_tokens * 4, []
    for b in reply.blocks:
        if budget <= 0:
            break
        blocks.append(Block("text", text=b.text[:budget], delay_s=b.delay_s))
        budget -= len(b.text)
    return Turn(blocks, delay_s=reply.delay_s, stop_reason="max_tokens")


def _usage(body: dict[str, Any], reply: Turn) -> dict[str, int]:
    out = sum(_tokens(b.text) if b.type == "text" else _tokens(json.dumps(b.input)) + 8
              for b in reply.blocks)
    return {
        "input_tokens": _tokens(json.dumps(body.get("messages", []))),
        "output_tokens": max(1, out),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _message(body: dict[str, Any], reply: Turn) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for b in reply.blocks:
        if b.type == "text":
            content.append({"type": "text", "text": b.text})
        else:
            content.append({"type": "tool_use", "id": b.id or _new_id("toolu_"),
                            "name": b.name, "input": b.input})
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": _stop_reason(reply) if reply.blocks else None,
        "stop_sequence": None,
        "usage": _usage(body, reply),
    }
