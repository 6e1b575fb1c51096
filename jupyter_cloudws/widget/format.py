"""Small text formatting shared by the magic's printed output."""

from __future__ import annotations

import time


def relative_time(ts: float, now_s: float | None = None) -> str:
    """``"3 min ago"``, as the chat widget's session picker says it."""
    seconds = max(0.0, (time.time() if now_s is None else now_s) - ts)
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{round(seconds / 60)} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    days = round(seconds / 86400)
    return "yesterday" if days == 1 else f"{days} days ago"
