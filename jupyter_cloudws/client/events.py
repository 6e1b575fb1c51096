"""One event of a session's transcript, as a Python object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloudws_sandbox.protocol import EventBody, ProtocolError, event_body_from_dict


@dataclass(frozen=True)
class Event:
    """``seq``, ``ts`` (epoch seconds) and ``type``, with the protocol dataclass in ``body``.

    Fields of the body read as attributes: ``ev.text``, ``ev.tool``, ``ev.success``. An event
    type this client does not know (a newer hub) has ``body=None``; its fields still read from
    ``data``, the event as the hub sent it.
    """

    seq: int
    ts: float
    type: str
    body: EventBody | None
    data: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        try:
            body: EventBody | None = event_body_from_dict(data)
        except ProtocolError:
            body = None
        return cls(int(data["seq"]), float(data.get("ts") or 0.0), str(data.get("type")), body, data)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails; read through __dict__ so that a half-built
        # instance (copy, pickle) cannot recurse.
        if name.startswith("__"):
            raise AttributeError(name)
        body = self.__dict__.get("body")
        if body is not None and hasattr(body, name):
            return getattr(body, name)
        data = self.__dict__.get("data") or {}
        if name in data:
            return data[name]
        raise AttributeError(f"{self.__dict__.get('type')} event has no field {name!r}")

    def __repr__(self) -> str:
        return f"<Event {self.seq} {self.type}{_summary(self.data)}>"


def _summary(data: dict[str, Any]) -> str:
    """The few fields that tell events apart at a glance."""
    kind = data.get("type")
    if kind == "tool_call":
        return f" {data.get('tool')} {data.get('status')}"
    if kind in ("assistant_text", "user_message"):
        text = str(data.get("text") or "")
        return " " + repr(text if len(text) <= 40 else text[:37] + "...")
    if kind == "execution_complete":
        outcome = "interrupted" if data.get("interrupted") else "ok" if data.get("success") else "failed"
        return f" {outcome}"
    if kind == "sandbox_status":
        return f" {data.get('status')}"
    if kind == "sandbox_progress":
        return f" {data.get('step')} {data.get('state')} {int(data.get('elapsed_ms') or 0)} ms"
    if kind == "git":
        return f" {str(data.get('sha') or '')[:8]} pushed={data.get('pushed')}"
    if kind == "error":
        return f" {data.get('code')}"
    return ""
