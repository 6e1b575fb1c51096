"""The sandbox's append-only event log: one JSON event per line on the sandbox's own disk.

An event is written and fsynced before anyone is told of it, so whatever a hub has seen survives
the daemon. Listeners are plain callables run synchronously on append; a bridge connection
registers one and reads its backlog with no ``await`` in between, so nothing falls in the gap.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .protocol import EventBody, dumps, make_event, validate_event_body

Listener = Callable[[dict[str, Any]], None]


class EventLog:
    def __init__(self, path: Path, redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.path = path
        self._redact = redact
        self.events: list[dict[str, Any]] = []
        self._listeners: list[Listener] = []
        if path.exists():
            self._load()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the daemon's life

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    break  # a torn last line from a crash mid-write: everything before it stands
        # Rewrite without the torn tail so later appends start on a clean line; via a new file,
        # so a crash now cannot cost the events already there.
        fresh = self.path.with_suffix(".tmp")
        with open(fresh, "w", encoding="utf-8") as fh:
            fh.writelines(dumps(e) + "\n" for e in self.events)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(fresh, self.path)

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    def append(self, body: EventBody | dict[str, Any]) -> dict[str, Any]:
        data = body.to_dict() if isinstance(body, EventBody) else dict(body)
        validate_event_body(data)
        if self._redact is not None:
            data = self._redact(data)
        event = make_event(data, self.last_seq + 1)
        self._file.write(dumps(event) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.events.append(event)
        for listener in list(self._listeners):
            listener(event)
        return event

    def after(self, seq: int) -> list[dict[str, Any]]:
        """Events with a higher ``seq`` (found by bisection, so a gap could not mislead it)."""
        return self.events[bisect.bisect_right(self.events, seq, key=lambda e: e["seq"]) :]

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def close(self) -> None:
        self._file.close()
