"""The chat widget: an anywidget whose transcript is rendered in Python and drawn by small,
dependency-free JavaScript."""

from __future__ import annotations

from typing import Any

__all__ = ["ChatWidget"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that the pure modules (markdown, tools, transcript) load without ipywidgets.
    if name == "ChatWidget":
        from .chat import ChatWidget

        return ChatWidget
    raise AttributeError(name)
