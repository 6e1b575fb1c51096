"""Secret values kept out of everything stored or shown: events, logs, error details.

A tool's output can hold a secret (``echo $ANTHROPIC_API_KEY``, or a file that prints it), so
redaction applies to what the agent produces, not only to what we write ourselves.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import Any

MIN_SECRET_CHARS = 8  # shorter values ("1", "true") would redact ordinary text
REDACTED = "[redacted]"


class Redactor:
    def __init__(self, secrets: Iterable[str | None]) -> None:
        self.secrets: list[str] = []
        self.pattern: re.Pattern[str] | None = None
        self._set(secrets)

    def _set(self, secrets: Iterable[str | None]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        # One left-to-right pass (alternatives longest first): replacing secret by secret would
        # let a replacement's text join its neighbours into a match, and a stream could not
        # reproduce that result piece by piece.
        self.pattern = re.compile("|".join(re.escape(s) for s in self.secrets)) if self.secrets else None

    def add(self, secret: str | None) -> None:
        """Redact ``secret`` too from now on (one that arrives later, such as a git token)."""
        if secret and secret not in self.secrets:
            self._set([*self.secrets, secret])

    @property
    def longest_chars(self) -> int:
        return len(self.secrets[0]) if self.secrets else 0

    def text(self, value: str) -> str:
        if self.pattern is None:
            return value
        return self.pattern.sub(REDACTED, value)

    def data(self, value: Any) -> Any:
        """``value`` with every string in it (keys included) redacted."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


class StreamRedactor:
    """Redaction of text that arrives in fragments, per stream (e.g. one per text block).

    A secret can be cut across two fragments, and each half alone matches nothing. So each
    stream holds back the text that could still turn out to be the start of a secret (at most
    the longest secret minus one character) and releases it with the next fragment or at
    :meth:`end`. For any split, the pieces returned for a stream add up to
    ``redactor.text(whole)``, and no piece is ever released that a later fragment would change.
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._held: dict[Hashable, str] = {}

    def feed(self, stream: Hashable, fragment: str) -> str:
        """The redacted text of ``stream`` that is now certain (may be ``""``)."""
        pattern = self.redactor.pattern
        if pattern is None:
            return fragment
        buffer = self._held.pop(stream, "") + fragment
        # Whether a match starts at position p is known once the longest secret fits after p;
        # positions from ``decided`` on may still begin one.
        decided = len(buffer) - self.redactor.longest_chars + 1
        out: list[str] = []
        pos = 0
        for match in pattern.finditer(buffer):
            if match.start() >= decided:
                break
            out += (buffer[pos : match.start()], REDACTED)
            pos = match.end()
        cut = max(pos, decided)
        out.append(buffer[pos:cut])
        if cut < len(buffer):
            self._held[stream] = buffer[cut:]
        return "".join(out)

    def end(self, stream: Hashable) -> str:
        """The rest of ``stream``, redacted; the stream is forgotten."""
        return self.redactor.text(self._held.pop(stream, ""))

    def streams(self) -> list[Hashable]:
        """Streams holding text back."""
        return list(self._held)
