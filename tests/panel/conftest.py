"""Fixtures for the panel's tests: ``open_panel`` opens ``cloudws/api/panel`` on the test server
(jp_ws_fetch: the server's token unless ``headers`` says otherwise) and closes it afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hub_api import PanelSocket


@pytest.fixture
def open_panel(jp_ws_fetch: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    sockets: list[PanelSocket] = []

    async def open_(*, hello: bool = True, **kwargs: Any) -> PanelSocket:
        sock = PanelSocket(await jp_ws_fetch("cloudws", "api", "panel", **kwargs))
        sockets.append(sock)
        if hello:
            first = await sock.recv()
            assert first["type"] == "hello", first
        return sock

    yield open_
    for sock in sockets:
        sock.close()
