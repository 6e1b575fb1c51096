"""One chat widget per session, shown inline or docked in JupyterLab's side area (sidecar)."""

from __future__ import annotations

from typing import Any

from IPython.display import display

from .chat import ChatWidget

_WIDGET_ATTR = "_cloudws_widget"


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


def open_panel(client: Any, session: Any | None = None, *, title: str = "Claude Code", anchor: str = "right") -> Any:
    """Dock the chat in JupyterLab's side area. Needs the ``sidecar`` package's JupyterLab
    extension, which ``pip install jupyter_cloudws`` brings along."""
    from sidecar import Sidecar

    panel = Sidecar(title=title, anchor=anchor)
    with panel:
        display(widget_for(client, session))
    return panel
