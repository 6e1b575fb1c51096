"""The hub's REST API and WebSocket as a test client sees them (used by fixtures in conftest.py;
a test module imports them from here, never from ``conftest``: every test folder has one)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection


class Api:
    """The REST API as a client sees it: status code and JSON, errors included."""

    def __init__(self, fetch: Callable[..., Any]) -> None:
        self._fetch = fetch

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"method": method}
        if body is not None:
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method in ("POST", "PATCH"):
            kwargs["body"] = "{}"
        if params:
            kwargs["params"] = params
        try:
            response = await self._fetch("cloudws", "api", *path.strip("/").split("/"), **kwargs)
        except HTTPClientError as exc:
            response = exc.response
            assert response is not None, exc
        text = response.body.decode() if response.body else ""
        return response.code, json.loads(text) if text else None

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **params)

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("POST", path, body)

    async def patch(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("PATCH", path, body)

    async def new_session(self, repo: Path | str, **fields: Any) -> dict[str, Any]:
        code, session = await self.post("sessions", {"repo": str(repo), **fields})
        assert code == 201, session
        return session

    async def prompt(self, session_id: str, text: str, **fields: Any) -> dict[str, Any]:
        code, accepted = await self.post(f"sessions/{session_id}/prompts", {"text": text, **fields})
        assert code == 202, accepted
        return accepted

    async def events(self, session_id: str, after: int = 0) -> list[dict[str, Any]]:
        collected: list[dict[str, Any]] = []
        while True:
            code, page = await self.get(f"sessions/{session_id}/events", after=after)
            assert code == 200, page
            collected += page["events"]
            if not page["has_more"]:
                return collected
            after = page["events"][-1]["seq"]

    async def wait_for_event(
        self, session_id: str, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 90.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in await self.events(session_id):
                if predicate(event):
                    return event
            await asyncio.sleep(0.1)
        raise AssertionError(f"no matching event in {timeout_s} s; got {await self.events(session_id)}")

    async def wait_until_complete(self, session_id: str, message_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
        return await self.wait_for_event(
            session_id, lambda e: e["type"] == "execution_complete" and e["message_id"] == message_id, timeout_s
        )


class SessionSocket:
    """One WebSocket to ``sessions/{id}/ws``, with the frames it has received so far."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.frames: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.conn.write_message(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout_s: float = 30.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.read_message(), timeout_s)
        assert raw is not None, "the hub closed the WebSocket"
        frame = json.loads(raw)
        self.frames.append(frame)
        return frame

    async def until(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame in {timeout_s} s; got {[f['type'] for f in self.frames]}")
            frame = await self.recv(remaining)
            if predicate(frame):
                return frame

    def events(self) -> list[dict[str, Any]]:
        """Every event received: the replay in ``subscribed`` and the live ``event`` frames."""
        out: list[dict[str, Any]] = []
        for frame in self.frames:
            if frame["type"] == "subscribed":
                out += frame["events"]
            elif frame["type"] == "event":
                out.append(frame["event"])
        return out

    def close(self) -> None:
        self.conn.close()
