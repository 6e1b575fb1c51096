"""One chat widget per session, for cells; and the link that opens a session in JupyterLab's
Claude Code side panel (the lab extension, which needs no kernel)."""

from __future__ import annotations

import time
from typing import Any

from .chat import ChatWidget

_WIDGET_ATTR = "_cloudws_widget"
# Rendered by the lab extension (src/mime.ts): opens the side panel on the session when fresh.
PANEL_MIME_TYPE = "application/vnd.jupyter.cloudws.panel+json"


def widget_for(client: Any, session: Any | None = None) -> ChatWidget:
    """The session's chat widget, made once: every display of a session is a view of one model,
    so a second view shows the same history and both stay live."""
    if session is None:
        return ChatWidget(client)
    widget = getattr(session, _WIDGET_ATTR, None)
    # A closed widget cannot be shown again, and one whose picker has since opened another
    # session no longer shows this one: either way this session gets a widget of its own.
    if widget is None or widget.comm is None or widget.current is not session:
        widget = ChatWidget(client, session)
        setattr(session, _WIDGET_ATTR, widget)
    return widget


class PanelLink:
    """Displayed, it opens ``session_id`` in the Claude Code panel of JupyterLab or Notebook 7.

    ``created_s`` (epoch seconds) lets the front end open the panel only for a fresh output: a
    notebook reopened later shows the line without taking the panel over."""

    def __init__(self, session_id: str, created_s: float | None = None) -> None:
        self.session_id = session_id
        self.created_s = time.time() if created_s is None else created_s

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            PANEL_MIME_TYPE: {"session_id": self.session_id, "created_s": self.created_s},
            "text/plain": f"Opened session {self.session_id} in the Claude Code panel (JupyterLab's right sidebar)",
        }

    def __repr__(self) -> str:
        return f"<cloudws.PanelLink {self.session_id}>"


def open_panel(session: Any) -> PanelLink:
    """The link that opens ``session`` in the side panel, once displayed."""
    if session is None:
        raise ValueError("the panel opens a session: pass one (the panel itself lists every session)")
    return PanelLink(session.id)
