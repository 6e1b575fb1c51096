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


class PanelSocket:
    """One ``cloudws/api/panel`` connection: every frame received so far, and their sum."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.frames: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}
        self.items: dict[str, dict[str, Any]] = {}  # transcript items by id, as upserts left them

    async def send(self, content: dict[str, Any]) -> None:
        await self.conn.write_message(json.dumps({"type": "msg", "content": content}))

    async def send_raw(self, raw: str | bytes) -> None:
        await self.conn.write_message(raw, binary=isinstance(raw, bytes))

    async def recv(self, timeout_s: float = 30.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.read_message(), timeout_s)
        assert raw is not None, f"the server closed the panel socket ({self.conn.close_code} {self.conn.close_reason})"
        frame = json.loads(raw)
        self.frames.append(frame)
        if frame["type"] == "hello":
            self.state = dict(frame["state"])
            self.items = {item["id"]: item for item in self.state["transcript"]}
        elif frame["type"] == "state":
            self.state.update(frame["changes"])
            if "transcript" in frame["changes"]:
                self.items = {item["id"]: item for item in frame["changes"]["transcript"]}
        elif frame["type"] == "msg" and frame["content"].get("type") == "upsert":
            for item in frame["content"]["items"]:
                self.items[item["id"]] = item
        return frame

    async def until(self, predicate: Callable[[PanelSocket], Any], timeout_s: float = 90.0) -> Any:
        """Read frames until ``predicate(self)`` is truthy (checked before reading, too)."""
        deadline = time.monotonic() + timeout_s
        while not (value := predicate(self)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not reached in {timeout_s} s; frames: {[summary(f) for f in self.frames]}")
            await self.recv(remaining)
        return value

    async def error(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """The next error frame (other frames before it are kept)."""
        start = len(self.frames)
        return await self.until(lambda s: next((f for f in s.frames[start:] if f["type"] == "error"), None), timeout_s)

    def close(self) -> None:
        self.conn.close()


def summary(frame: dict[str, Any]) -> str:
    if frame["type"] == "msg":
        return f"msg:{frame['content'].get('type')}"
    if frame["type"] == "state":
        return f"state:{','.join(frame['changes'])}"
    if frame["type"] == "error":
        return f"error:{frame['code']}"
    return frame["type"]
