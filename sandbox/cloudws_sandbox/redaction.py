"""Secret values kept out of everything stored or shown: events, logs, error details.

A tool's output can hold a secret (``echo $ANTHROPIC_API_KEY``, or a file that prints it), so
redaction applies to what the agent produces, not only to what we write ourselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MIN_SECRET_CHARS = 8  # shorter values ("1", "true") would redact ordinary text
REDACTED = "[redacted]"


class Redactor:
    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

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
