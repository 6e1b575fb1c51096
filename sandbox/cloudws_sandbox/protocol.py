"""The one definition of every message jupyter_cloudws exchanges.

Three vocabularies live here, all JSON objects:

* **Events** — the durable session transcript. Every event is ``{seq, type, ts, ...fields}``;
  ``seq`` is strictly increasing per session and assigned by whoever owns the log (the sandbox
  for its own log, the hub for the session log). Updates are new events, never edits: a
  ``tool_call`` appears once ``running`` and again ``completed``/``error`` with the same
  ``call_id``, and readers fold them by ``call_id``.
* **WebSocket frames** between a client (browser, kernel) and the hub.
* **Bridge frames** between the hub and the sandbox runtime daemon (JSON lines).

Everything here is pure: parsing and validation raise :class:`ProtocolError`, which carries the
``code`` sent back to the peer. No I/O.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

PROTOCOL_VERSION = 1

SandboxStatus = Literal["spawning", "cloning", "ready", "stopped", "failed"]
SANDBOX_STATUSES: frozenset[str] = frozenset({"spawning", "cloning", "ready", "stopped", "failed"})
ToolStatus = Literal["running", "completed", "error"]
TOOL_STATUSES: frozenset[str] = frozenset({"running", "completed", "error"})


class ProtocolError(ValueError):
    """A message that breaks the protocol; ``code`` is machine-readable, the text is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_frame(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message}


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventBody:
    """Fields of one event type; ``seq`` and ``ts`` are added when the event is logged."""

    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class UserMessage(EventBody):
    type: ClassVar[str] = "user_message"
    message_id: str
    text: str
    author: dict[str, Any] = field(default_factory=dict)
    model: str | None = None


@dataclass(frozen=True)
class AssistantText(EventBody):
    """A finished block of assistant markdown. While it is produced, ``delta`` frames stream it."""

    type: ClassVar[str] = "assistant_text"
    message_id: str
    text: str
    index: int = 0  # the n-th text block of this prompt; matches the ``index`` of its deltas


@dataclass(frozen=True)
class ToolCall(EventBody):
    type: ClassVar[str] = "tool_call"
    message_id: str
    call_id: str
    tool: str
    input: dict[str, Any]
    status: str = "running"
    output: str | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class ExecutionComplete(EventBody):
    type: ClassVar[str] = "execution_complete"
    message_id: str
    success: bool
    error: str | None = None
    cost_usd: float | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    duration_ms: int | None = None
    interrupted: bool = False


@dataclass(frozen=True)
class SandboxStatusEvent(EventBody):
    type: ClassVar[str] = "sandbox_status"
    status: str
    detail: str = ""


# The steps of getting a sandbox ready, in order; a spawn shows each as it runs and ends.
PROGRESS_STEPS = ("image", "start", "clone", "restore", "fetch", "setup", "agent")
PROGRESS_STATES = ("running", "done", "failed")


@dataclass(frozen=True)
class SandboxProgressEvent(EventBody):
    """One step of a spawn: ``image`` and ``start`` come from the hub, the rest from the sandbox.
    ``elapsed_ms`` counts from the step's start; ``output`` carries a few lines a step printed
    (the setup script's), already redacted and bounded."""

    type: ClassVar[str] = "sandbox_progress"
    step: str
    state: str
    elapsed_ms: int = 0
    detail: str = ""
    output: str = ""


# What a ``git`` event may say of each changed file; the hub's changes route says the same.
GIT_FILE_STATUSES: frozenset[str] = frozenset({"added", "modified", "deleted", "renamed", "copied", "type_changed"})
MAX_GIT_EVENT_FILES = 300  # the rest are counted in ``files_total``; the changes route lists them all
MAX_GIT_PATH_CHARS = 4096  # PATH_MAX: a longer path cannot be a file a sandbox wrote
_GIT_FILE_KEYS = frozenset({"path", "old_path", "status", "additions", "deletions"})
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256, as git prints them


@dataclass(frozen=True)
class GitEvent(EventBody):
    """A prompt's commit and push. ``before`` is HEAD before the prompt (None: the repository had
    no commit), so ``before..sha`` is the prompt's work; ``files`` lists at most
    :data:`MAX_GIT_EVENT_FILES` of the changed files, ``files_total`` counts them all."""

    type: ClassVar[str] = "git"
    branch: str
    sha: str
    pushed: bool
    committed: bool = True
    message_id: str | None = None
    error: str | None = None
    before: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    files_total: int = 0


@dataclass(frozen=True)
class ErrorEvent(EventBody):
    type: ClassVar[str] = "error"
    code: str
    message: str
    message_id: str | None = None


PULL_REQUEST_STATES = ("draft", "open", "merged", "closed")


@dataclass(frozen=True)
class PullRequestEvent(EventBody):
    """The session's pull request was opened, found, or changed state on the git host. Written
    by the hub alone (a sandbox could claim anything)."""

    type: ClassVar[str] = "pull_request"
    number: int
    url: str
    state: str
    title: str


EVENT_TYPES: dict[str, type[EventBody]] = {
    cls.type: cls
    for cls in (
        UserMessage,
        AssistantText,
        ToolCall,
        ExecutionComplete,
        SandboxStatusEvent,
        SandboxProgressEvent,
        GitEvent,
        ErrorEvent,
        PullRequestEvent,
    )
}

# What a sandbox may put in its log and send the hub. ``user_message`` and ``pull_request`` are
# the hub's alone: a sandbox that could write them would put words in the user's mouth, or show
# a pull request that does not exist.
SANDBOX_EVENT_TYPES: frozenset[str] = frozenset(EVENT_TYPES) - {"user_message", "pull_request"}

MAX_SEQ = 2**53  # seq numbers beyond this are refused (JSON readers lose integer precision)

_REQUIRED: dict[str, tuple[str, ...]] = {
    name: tuple(
        f.name
        for f in fields(cls)
        if f.default is MISSING and f.default_factory is MISSING
    )
    for name, cls in EVENT_TYPES.items()
}


def _type_check(annotation: str) -> tuple[Any, str]:
    """A checker for a field annotation as written in the dataclasses above, and its name."""
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    checks: dict[str, tuple[Any, str]] = {
        "str": (lambda v: isinstance(v, str), "a string"),
        "bool": (lambda v: isinstance(v, bool), "true or false"),
        "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
        "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
        "dict[str, Any]": (lambda v: isinstance(v, dict), "an object"),
        "list[dict[str, Any]]": (lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v),
                                 "a list of objects"),
    }
    check, what = checks[base]
    if optional:
        return (lambda v: v is None or check(v)), what + " or null"
    return check, what


# Field name -> (check, description) per event type, from the dataclass annotations, so the
# types are written once. Checked on every event a sandbox sends and the hub stores.
_FIELD_TYPES: dict[str, dict[str, tuple[Any, str]]] = {
    name: {f.name: _type_check(str(f.type)) for f in fields(cls)} for name, cls in EVENT_TYPES.items()
}


def make_event(body: EventBody | dict[str, Any], seq: int, ts: float | None = None) -> dict[str, Any]:
    """An event as stored and sent: the body's fields plus ``seq`` and ``ts`` (epoch seconds)."""
    data = body.to_dict() if isinstance(body, EventBody) else dict(body)
    data.pop("seq", None)
    data.pop("ts", None)
    return {"seq": seq, "ts": time.time() if ts is None else ts, **data}


def event_body_from_dict(data: dict[str, Any]) -> EventBody:
    """The dataclass for an event dict. Unknown fields are ignored, so an older client reads a
    newer hub's events."""
    validate_event_body(data)
    cls = EVENT_TYPES[data["type"]]
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def validate_event_body(data: dict[str, Any]) -> dict[str, Any]:
    """Check that ``data`` is a known event type with its required fields; return it."""
    if not isinstance(data, dict):
        raise ProtocolError("bad_event", "an event must be a JSON object")
    kind = data.get("type")
    if not _one_of(kind, EVENT_TYPES):
        raise ProtocolError("bad_event", f"unknown event type {kind!r}")
    missing = [name for name in _REQUIRED[kind] if name not in data]
    if missing:
        raise ProtocolError("bad_event", f"{kind} event lacks {', '.join(missing)}")
    for name, (check, what) in _FIELD_TYPES[kind].items():
        if name in data and not check(data[name]):
            raise ProtocolError("bad_event", f"{kind} event field {name!r} must be {what}")
    if kind == "sandbox_status" and not _one_of(data["status"], SANDBOX_STATUSES):
        raise ProtocolError("bad_event", f"unknown sandbox status {data['status']!r}")
    if kind == "sandbox_progress" and not (_one_of(data["step"], PROGRESS_STEPS) and _one_of(data["state"], PROGRESS_STATES)):
        raise ProtocolError("bad_event", f"unknown progress step or state {data['step']!r}/{data['state']!r}")
    if kind == "pull_request" and not _one_of(data["state"], PULL_REQUEST_STATES):
        raise ProtocolError("bad_event", f"unknown pull request state {data['state']!r}")
    if kind == "tool_call" and not _one_of(data.get("status", "running"), TOOL_STATUSES):
        raise ProtocolError("bad_event", f"unknown tool status {data['status']!r}")
    if kind == "git":
        _check_git_event(data)
    return data


def _one_of(value: Any, allowed: Any) -> bool:
    """Whether ``value`` is one of the ``allowed`` names. A sandbox's frame may hold a list or an
    object where a name belongs: those are unhashable, and ``in`` a set or dict would raise."""
    return isinstance(value, str) and value in allowed


def _check_git_event(data: dict[str, Any]) -> None:
    """The parts of a ``git`` event the hub hands to git or shows as a list: a sandbox is
    untrusted, so ``before`` must be a commit id (never an option or a range) and ``files`` a
    bounded list of well-formed entries."""
    before = data.get("before")
    if before is not None and not _SHA.fullmatch(before):
        raise ProtocolError("bad_event", "git event field 'before' must be a full hexadecimal commit id or null")
    files = data.get("files", [])
    if len(files) > MAX_GIT_EVENT_FILES:
        raise ProtocolError("bad_event", f"git event lists {len(files)} files; at most {MAX_GIT_EVENT_FILES}")
    for entry in files:
        problem = _git_file_problem(entry)
        if problem:
            raise ProtocolError("bad_event", f"git event file entry {problem}")
    total = data.get("files_total", len(files))
    if not len(files) <= total <= MAX_SEQ:
        raise ProtocolError("bad_event", f"git event 'files_total' must be from {len(files)} (the files listed) to {MAX_SEQ}")


def _git_file_problem(entry: dict[str, Any]) -> str | None:
    unknown = set(entry) - _GIT_FILE_KEYS
    if unknown:
        return f"has unknown fields {', '.join(sorted(map(repr, unknown)))}"
    for key in ("path", "old_path"):
        value = entry.get(key)
        if key == "old_path" and value is None:
            continue
        if not isinstance(value, str) or not 0 < len(value) <= MAX_GIT_PATH_CHARS:
            return f"{key!r} must be a string of 1 to {MAX_GIT_PATH_CHARS} characters"
    if entry.get("status") not in GIT_FILE_STATUSES:
        return f"'status' must be one of {', '.join(sorted(GIT_FILE_STATUSES))}"
    for key in ("additions", "deletions"):
        value = entry.get(key)  # null: a binary file, whose lines git does not count
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEQ):
            return f"{key!r} must be an integer from 0 to {MAX_SEQ} or null"
    return None


# --------------------------------------------------------------------------------------------
# JSON helpers shared by every frame parser
# --------------------------------------------------------------------------------------------


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _load_object(raw: str | bytes, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes:
        raise ProtocolError("too_large", f"frame is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("malformed", f"frame is not valid JSON: {exc}") from None
    except RecursionError:  # valid JSON nested deeper than the parser goes: a hostile peer
        raise ProtocolError("malformed", "frame is nested too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed", "frame must be a JSON object")
    return obj


def _opt_int(obj: dict[str, Any], key: str, *, minimum: int = 0) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProtocolError("bad_request", f"{key!r} must be an integer >= {minimum}")
    return value


def _opt_str(obj: dict[str, Any], key: str, *, max_len: int = 200) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise ProtocolError("bad_request", f"{key!r} must be a string of at most {max_len} characters")
    return value


# --------------------------------------------------------------------------------------------
# Values that reach a command line (git, Claude Code): checked once, wherever they come in
# --------------------------------------------------------------------------------------------

MAX_MODEL_CHARS = 200  # the one limit for a session's model and a prompt's model, REST and WebSocket
MODEL_RULE = f"letters, digits and . - _ : @ / only, not starting with '-', at most {MAX_MODEL_CHARS} characters"
_MODEL = re.compile(r"[A-Za-z0-9._:@/-]+")

MAX_BRANCH_CHARS = 250
BRANCH_RULE = (
    "a name that `git check-ref-format --branch` accepts: no spaces, control characters or any of "
    "~ ^ : ? * [ \\, no '..', '@{' or '//', no part that starts with '.' or ends with '.lock', "
    "not starting with '-' or '/', not ending with '.' or '/', not 'HEAD'"
)
_BRANCH_BAD_CHARS = frozenset(" ~^:?*[\\\x7f") | frozenset(chr(c) for c in range(32))


def check_model(value: Any, key: str = "model") -> str | None:
    """A model name as the agent's ``--model`` receives it; None or "" mean "no choice"."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProtocolError("bad_request", f"{key!r} must be a string: {MODEL_RULE}")
    if len(value) > MAX_MODEL_CHARS or not _MODEL.fullmatch(value) or value.startswith("-"):
        raise ProtocolError("bad_model", f"{key!r} must be {MODEL_RULE}")
    return value


def branch_name_problem(name: str) -> str | None:
    """What makes ``name`` fail ``git check-ref-format --branch``, or None when it passes.

    git's rules for ``refs/heads/<name>`` (git-check-ref-format(1)), plus what ``--branch`` adds:
    no leading '-' and not ``HEAD``. ``@{-N}`` (git's "previous branch") is refused as any ``@{``.
    """
    if not name:
        return "it is empty"
    if name.startswith("-"):
        return "it starts with '-'"
    if name == "HEAD":
        return "'HEAD' is not a branch name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    bad = sorted(set(name) & _BRANCH_BAD_CHARS)
    if bad:
        return f"it contains {', '.join(repr(c) for c in bad)}"
    for seq in ("..", "@{"):
        if seq in name:
            return f"it contains {seq!r}"
    if name.endswith("."):
        return "it ends with '.'"
    for part in name.split("/"):
        if not part:
            return "it starts or ends with '/' or contains '//'"
        if part.startswith("."):
            return f"its part {part!r} starts with '.'"
        if part.endswith(".lock"):
            return f"its part {part!r} ends with '.lock'"
    return None


def check_branch(value: Any, key: str = "base_branch") -> str:
    """A branch name to check out; None or "" mean the repository's default branch."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_BRANCH_CHARS:
        raise ProtocolError("bad_request", f"{key!r} must be a string of at most {MAX_BRANCH_CHARS} characters")
    problem = branch_name_problem(value)
    if problem:
        raise ProtocolError("bad_branch", f"{key!r} is not a branch name ({problem}); it must be {BRANCH_RULE}, "
                            "or empty for the repository's default branch")  # fmt: skip
    return value


# --------------------------------------------------------------------------------------------
# Prompts (shared by REST and WebSocket)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRequest:
    text: str
    client_request_id: str | None = None
    model: str | None = None


def parse_prompt(obj: dict[str, Any], *, max_prompt_bytes: int) -> PromptRequest:
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError("bad_request", "'text' must be a non-empty string")
    size_bytes = len(text.encode("utf-8"))
    if size_bytes > max_prompt_bytes:
        raise ProtocolError(
            "prompt_too_large",
            f"prompt is {size_bytes} bytes; the limit is {max_prompt_bytes} bytes",
        )
    return PromptRequest(
        text=text,
        client_request_id=_opt_str(obj, "client_request_id"),
        model=check_model(obj.get("model")),
    )


# --------------------------------------------------------------------------------------------
# WebSocket frames: client -> hub
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscribe:
    after: int | None = None


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Typing:
    pass


@dataclass(frozen=True)
class Ping:
    pass


ClientFrame = Subscribe | PromptRequest | Stop | Typing | Ping
CLIENT_FRAME_TYPES = ("subscribe", "prompt", "stop", "typing", "ping")


def parse_client_frame(raw: str | bytes, *, max_prompt_bytes: int) -> ClientFrame:
    # A frame may carry a whole prompt, so allow the prompt limit plus JSON overhead.
    obj = _load_object(raw, max_bytes=max_prompt_bytes * 2 + 4096)
    kind = obj.get("type")
    if kind == "subscribe":
        return Subscribe(after=_opt_int(obj, "after"))
    if kind == "prompt":
        return parse_prompt(obj, max_prompt_bytes=max_prompt_bytes)
    if kind == "stop":
        return Stop()
    if kind == "typing":
        return Typing()
    if kind == "ping":
        return Ping()
    raise ProtocolError(
        "unknown_type",
        f"unknown frame type {kind!r}; expected one of {', '.join(CLIENT_FRAME_TYPES)}",
    )


# --------------------------------------------------------------------------------------------
# WebSocket frames: hub -> client
# --------------------------------------------------------------------------------------------


def subscribed_frame(session: dict[str, Any], events: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"type": "subscribed", "v": PROTOCOL_VERSION, "session": session, "events": events, "has_more": has_more}


def event_frame(event: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event", "event": event}


def delta_frame(message_id: str, index: int, text: str) -> dict[str, Any]:
    """A fragment of assistant text as it streams; not an event, never stored or replayed."""
    return {"type": "delta", "message_id": message_id, "index": index, "text": text}


def session_frame(session: dict[str, Any]) -> dict[str, Any]:
    """The session's metadata changed (status, title, archived)."""
    return {"type": "session", "session": session}


def prompt_accepted_frame(message_id: str, position: int, client_request_id: str | None) -> dict[str, Any]:
    return {
        "type": "prompt_accepted",
        "message_id": message_id,
        "position": position,
        "client_request_id": client_request_id,
    }


def pong_frame() -> dict[str, Any]:
    return {"type": "pong"}


# --------------------------------------------------------------------------------------------
# Bridge frames: hub <-> sandbox daemon, one JSON object per line
# --------------------------------------------------------------------------------------------

BRIDGE_MAX_LINE_BYTES = 8 * 1024 * 1024
BRIDGE_OPS = ("attach", "prompt", "interrupt", "ping", "shutdown", "credentials", "push")
# How a daemon answers a ``push`` op: ``done`` (its ``git`` event, at ``seq``, says pushed or
# why not), ``busy`` (a prompt or another push holds the work tree), ``unavailable`` (the
# sandbox is starting, or its start-up failed).
PUSH_RESULTS = ("done", "busy", "unavailable")
MAX_REQUEST_ID_CHARS = 200
# A git credential for the daemon's own clone, fetch and push (see credentials.py). Values are
# checked by shape only, and no error message ever quotes them: the password is a token.
CREDENTIAL_FIELDS = ("protocol", "host", "username", "password")
CREDENTIAL_PROTOCOLS = ("https", "http")
MAX_CREDENTIAL_CHARS = 4096
_CREDENTIAL_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def parse_bridge_op(raw: str | bytes) -> dict[str, Any]:
    """A hub -> sandbox frame: ``{"op": ..., ...}``."""
    obj = _load_object(raw, max_bytes=BRIDGE_MAX_LINE_BYTES)
    op = obj.get("op")
    if op not in BRIDGE_OPS:
        raise ProtocolError("unknown_op", f"unknown bridge op {op!r}")
    if op == "attach":
        _opt_int(obj, "after")
    elif op == "prompt":
        for key in ("message_id", "text"):
            if not isinstance(obj.get(key), str):
                raise ProtocolError("bad_request", f"prompt op needs string {key!r}")
    elif op == "credentials":
        check_credential(obj)
    elif op == "push":
        request_id = obj.get("request_id")
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
            raise ProtocolError("bad_request", f"push op needs a string 'request_id' of 1 to {MAX_REQUEST_ID_CHARS} characters")
        if not isinstance(obj.get("author", {}), dict):
            raise ProtocolError("bad_request", "push op 'author' must be an object")
    return obj


def check_credential(obj: dict[str, Any]) -> dict[str, str]:
    """The ``protocol``, ``host``, ``username`` and ``password`` of a credentials op, checked as
    git's credential protocol needs them (one line each: a newline would forge another key)."""
    values = {key: obj.get(key) for key in CREDENTIAL_FIELDS}
    for key, value in values.items():
        if not isinstance(value, str) or not value or len(value) > MAX_CREDENTIAL_CHARS:
            raise ProtocolError("bad_request", f"credentials op needs a non-empty string {key!r} "
                                f"of at most {MAX_CREDENTIAL_CHARS} characters")  # fmt: skip
        if "\n" in value or "\0" in value or "\r" in value:
            raise ProtocolError("bad_request", f"credentials op field {key!r} may not hold a newline or NUL")
    if values["protocol"] not in CREDENTIAL_PROTOCOLS:
        raise ProtocolError("bad_request", f"credentials op 'protocol' must be one of {', '.join(CREDENTIAL_PROTOCOLS)}")
    if not _CREDENTIAL_HOST.fullmatch(values["host"]):
        raise ProtocolError("bad_request", "credentials op 'host' must be a host name or address, with an optional :port")
    return values  # type: ignore[return-value]


def parse_bridge_reply(raw: str | bytes) -> dict[str, Any]:
    """A sandbox -> hub frame: ``{"kind": "event"|"delta"|"attached"|"ack"|"pong"|"error", ...}``."""
    obj = _load_object(raw, max_bytes=BRIDGE_MAX_LINE_BYTES)
    kind = obj.get("kind")
    if kind == "event":
        event = obj.get("event")
        seq = event.get("seq") if isinstance(event, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
            raise ProtocolError("bad_event", f"event frame needs an event with an integer seq from 1 to {MAX_SEQ}")
        validate_event_body(event)
        if event["type"] not in SANDBOX_EVENT_TYPES:
            raise ProtocolError("forbidden_event", f"a sandbox may not send {event['type']!r} events")
    elif kind == "delta":
        if not isinstance(obj.get("message_id"), str) or not isinstance(obj.get("text"), str):
            raise ProtocolError("bad_frame", "delta frame needs string 'message_id' and 'text'")
        index = obj.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ProtocolError("bad_frame", "delta frame 'index' must be an integer >= 0")
        obj["index"] = index
    elif kind == "attached":
        last_seq = obj.get("last_seq", 0)
        if not isinstance(last_seq, int) or isinstance(last_seq, bool) or not 0 <= last_seq <= MAX_SEQ:
            raise ProtocolError("bad_frame", f"attached frame 'last_seq' must be an integer from 0 to {MAX_SEQ}")
        obj["last_seq"] = last_seq
    elif kind == "ack":
        if obj.get("op") == "push":
            _check_push_ack(obj)
    elif kind not in ("pong", "error"):
        raise ProtocolError("unknown_kind", f"unknown bridge reply {kind!r}")
    return obj


def _check_push_ack(obj: dict[str, Any]) -> None:
    """The hub waits on a push's ack: it must say which push, how it went, and where its event is."""
    if not isinstance(obj.get("request_id"), str):
        raise ProtocolError("bad_frame", "push ack needs a string 'request_id'")
    if obj.get("result") not in PUSH_RESULTS:
        raise ProtocolError("bad_frame", f"push ack 'result' must be one of {', '.join(PUSH_RESULTS)}")
    if not isinstance(obj.get("message", ""), str):
        raise ProtocolError("bad_frame", "push ack 'message' must be a string")
    seq = obj.get("seq")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ):
        raise ProtocolError("bad_frame", f"push ack 'seq' must be an integer from 1 to {MAX_SEQ} or null")
    if obj["result"] == "done" and seq is None:
        raise ProtocolError("bad_frame", "a done push ack needs the 'seq' of its git event")


def bridge_attach(after: int) -> dict[str, Any]:
    return {"op": "attach", "v": PROTOCOL_VERSION, "after": after}


def bridge_credentials(protocol: str, host: str, username: str, password: str) -> dict[str, Any]:
    """The git credential a sandbox's own git calls answer with (held in memory, never logged)."""
    return {"op": "credentials", "protocol": protocol, "host": host, "username": username, "password": password}


def bridge_push(request_id: str, author: dict[str, Any]) -> dict[str, Any]:
    """Commit what is left uncommitted and push the session branch, now (for a pull request)."""
    return {"op": "push", "request_id": request_id, "author": author}


def bridge_prompt(message_id: str, text: str, model: str | None, author: dict[str, Any]) -> dict[str, Any]:
    return {"op": "prompt", "message_id": message_id, "text": text, "model": model, "author": author}
