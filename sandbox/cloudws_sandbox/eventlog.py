"""The sandbox's append-only event log: one JSON event per line on the sandbox's own disk.

An event is written and fsynced before anyone is told of it, so whatever a hub has seen survives
the daemon. Listeners are plain callables run synchronously on append; a bridge connection
registers one and checks that its replay has caught up with no ``await`` in between, so nothing
falls in the gap.

Only an index is held in memory (each event's ``seq`` and the byte offset of its line, 16 bytes
an event): a sandbox that runs for days keeps its log on disk, and a replay reads it from there.
"""

from __future__ import annotations

import bisect
import json
import os
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .protocol import EventBody, dumps, make_event, validate_event_body

Listener = Callable[[dict[str, Any]], None]


class EventLog:
    def __init__(self, path: Path, redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.path = path
        self._redact = redact
        self._seqs = array("q")
        self._offsets = array("q")  # where each event's line starts in the file
        self._listeners: list[Listener] = []
        if path.exists():
            self._load()
        self._file = open(path, "ab")  # noqa: SIM115 - held for the daemon's life; bytes, for offsets
        self._size_bytes = self._file.tell()

    def _load(self) -> None:
        good_bytes = 0
        missing_newline = False
        with open(self.path, "rb") as fh:
            for line in fh:
                try:
                    seq = json.loads(line)["seq"]
                except (ValueError, TypeError, KeyError):
                    break  # a torn last line from a crash mid-write: everything before it stands
                if not isinstance(seq, int):
                    break
                self._seqs.append(seq)
                self._offsets.append(good_bytes)
                good_bytes += len(line)
                missing_newline = not line.endswith(b"\n")
        # Cut the torn tail so later appends start on a clean line. Truncating never touches the
        # events before it, so a crash now cannot cost them.
        if good_bytes < self.path.stat().st_size:
            with open(self.path, "r+b") as fh:
                fh.truncate(good_bytes)
                fh.flush()
                os.fsync(fh.fileno())
        if missing_newline:  # the write stopped just before its newline: the event is whole
            with open(self.path, "ab") as fh:
                fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())

    def __len__(self) -> int:
        return len(self._seqs)

    @property
    def last_seq(self) -> int:
        return self._seqs[-1] if self._seqs else 0

    def append(self, body: EventBody | dict[str, Any]) -> dict[str, Any]:
        data = body.to_dict() if isinstance(body, EventBody) else dict(body)
        validate_event_body(data)
        if self._redact is not None:
            data = self._redact(data)
        event = make_event(data, self.last_seq + 1)
        line = (dumps(event) + "\n").encode()
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._seqs.append(event["seq"])
        self._offsets.append(self._size_bytes)
        self._size_bytes += len(line)
        for listener in list(self._listeners):
            listener(event)
        return event

    def read_after(self, seq: int, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Events with a higher ``seq`` (found by bisection, so a gap could not mislead it), read
        from the file one at a time, at most ``limit``; those appended while it runs are left for
        the next call."""
        start = bisect.bisect_right(self._seqs, seq)
        end = len(self._seqs) if limit is None else min(len(self._seqs), start + limit)
        if start >= end:
            return
        with open(self.path, "rb") as fh:
            fh.seek(self._offsets[start])
            for _ in range(end - start):
                yield json.loads(fh.readline())

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def close(self) -> None:
        self._file.close()
