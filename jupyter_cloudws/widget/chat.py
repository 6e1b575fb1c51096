"""The chat widget: :class:`~.controller.ChatController` shown in a notebook as an anywidget.

All the chat's traits and logic live in the controller; this class adds only what anywidget
needs: the front end (``_esm``, ``_css``), the comm as the transport of the controller's
messages, and ipywidgets' entry points that send or read state, taken under the controller's
lock (see ``controller.py`` for why one lock).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget

from .controller import ChatController
from .markdown import PYGMENTS_CSS

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from ..client import Client, Session

__all__ = ["ChatWidget"]

HERE = Path(__file__).parent


class ChatWidget(ChatController, anywidget.AnyWidget):
    _esm = HERE / "chat.js"
    _css = (HERE / "chat.css").read_text() + "\n" + PYGMENTS_CSS

    def __init__(
        self, client: Client, session: Session | None = None, *, review_executor: Executor | None = None, **kwargs: Any
    ) -> None:
        super().__init__(client, session, review_executor=review_executor, **kwargs)
        self.on_msg(self._on_front_end_message)

    def _on_front_end_message(self, _: Any, content: dict[str, Any], buffers: list[bytes]) -> None:
        self.handle_message(content)

    # -- the controller's transport: the widget's comm ----------------------------------------

    def _emit(self, content: dict[str, Any]) -> None:
        self.send(content)

    @contextmanager
    def _batch(self) -> Iterator[None]:
        with self.hold_sync():
            yield

    def _close_transport(self) -> None:
        anywidget.AnyWidget.close(self)

    # -- ipywidgets' entry points, under the lock -------------------------------------------------

    def send(self, content: Any, buffers: Any = None) -> None:
        with self._lock:
            super().send(content, buffers)

    def send_state(self, key: Any = None) -> None:
        with self._lock:
            super().send_state(key)

    def set_state(self, sync_data: Any) -> None:
        with self._lock:
            super().set_state(sync_data)

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        with self._lock:  # a new view or a reload must not see the transcript mid-update
            return super().get_state(key, drop_defaults)
