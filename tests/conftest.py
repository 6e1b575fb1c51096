"""Fixtures for driving the hub as a user would: a real jupyter-server with the extension, the
real Claude Code CLI against the scripted fake Anthropic API, and bare git repositories on disk."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection

from hub_fakes import make_hub
from jupyter_cloudws.hub import SessionHub
from jupyter_cloudws.store import SessionStore
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic
from jupyter_cloudws.testing.fake_backend import FakeBackend
from support import kill_sandboxes, make_bare_repo

pytest_plugins = ["pytest_jupyter.jupyter_server"]

@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """A bare repository with one commit on ``main`` holding ``files``."""

    def make(name: str = "project", files: dict[str, str] | None = None) -> Path:
        return make_bare_repo(tmp_path, name, files)

    return make


@pytest.fixture
def cloudws_data_dir(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "cloudws-data"
    yield data_dir
    kill_sandboxes(data_dir)


@pytest.fixture
def sandbox_env(fake_anthropic: FakeAnthropic) -> dict[str, str]:
    """What every sandbox needs to run Claude Code offline against the fake."""
    return {
        "ANTHROPIC_BASE_URL": fake_anthropic.url,
        "ANTHROPIC_API_KEY": "sk-test-cloudws",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


@pytest.fixture
def cloudws_config() -> dict[str, Any]:
    """Overrides of ``c.CloudWorkspaces`` for one test (override this fixture or mutate it)."""
    return {}


@pytest.fixture
def jp_server_config(
    tmp_path: Path, cloudws_data_dir: Path, sandbox_env: dict[str, str], cloudws_config: dict[str, Any]
) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_cloudws": True}},
        "CloudWorkspaces": {
            "data_dir": str(cloudws_data_dir),
            "sandbox_env": sandbox_env,
            "local_user_name": "Ada Lovelace",
            "local_user_email": "ada@example.test",
            # make_repo puts repositories under tmp_path, outside the default roots (the server's
            # root_dir and home): allow it here rather than loosen the default.
            "local_repo_roots": [str(tmp_path)],
            **cloudws_config,
        },
    }


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


@pytest.fixture
def api(jp_serverapp: Any, jp_fetch: Callable[..., Any]) -> Api:
    return Api(jp_fetch)


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


@pytest.fixture
def open_socket(jp_ws_fetch: Callable[..., Any]) -> Callable[..., Any]:
    sockets: list[SessionSocket] = []

    async def open_(session_id: str, **kwargs: Any) -> SessionSocket:
        conn = await jp_ws_fetch("cloudws", "api", "sessions", session_id, "ws", **kwargs)
        sock = SessionSocket(conn)
        sockets.append(sock)
        return sock

    yield open_
    for sock in sockets:
        sock.close()


@pytest.fixture
def memory_store() -> Iterator[SessionStore]:
    """A throwaway store for hub tests that need no server."""
    store = SessionStore(":memory:")
    yield store
    store.close()


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def fake_hub(memory_store: SessionStore, fake_backend: FakeBackend) -> Iterator[SessionHub]:
    """A hub over the fake backend, with the heartbeat off and no pause between reattaches."""
    hub = make_hub(memory_store, fake_backend)
    yield hub
    asyncio.get_event_loop().run_until_complete(hub.close())
