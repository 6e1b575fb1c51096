"""Helpers for tests that drive a :class:`SessionHub` over the fake backend (fixtures
``memory_store``, ``fake_backend`` and ``fake_hub`` are in conftest.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from cloudws_sandbox.protocol import PromptRequest
from jupyter_cloudws.hub import HubSettings, Requester, SessionHub
from jupyter_cloudws.store import SessionStore
from jupyter_cloudws.testing.fake_backend import FakeBackend, FakeSandbox

WAIT_S = 5.0  # a bound for a broken hub to show itself, never a pause
ADA = Requester("ada")  # who owns the sessions these tests make


def make_hub(store: SessionStore, backend: FakeBackend, **settings: Any) -> SessionHub:
    defaults: dict[str, Any] = dict(
        attach_timeout_s=5.0, bridge_heartbeat_s=0, max_reattach_attempts=3, reconnect_base_s=0.0
    )
    return SessionHub(store, backend, HubSettings(**{**defaults, **settings}))


def new_session(hub: SessionHub) -> str:
    return hub.create_session({"repo": "https://example.test/project.git"}, owner=ADA.username)["id"]


def send(hub: SessionHub, sid: str, text: str) -> str:
    return hub.submit_prompt(sid, PromptRequest(text), {"username": "ada"}, ADA)["message_id"]


def status(hub: SessionHub, message_id: str) -> str:
    return hub.store.get_prompt(message_id)["status"]


def completions(hub: SessionHub, sid: str, message_id: str) -> list[dict[str, Any]]:
    events, _ = hub.store.events_after(sid, 0, 10_000)
    return [e for e in events if e["type"] == "execution_complete" and e["message_id"] == message_id]


def events_of(hub: SessionHub, sid: str, kind: str) -> list[dict[str, Any]]:
    events, _ = hub.store.events_after(sid, 0, 10_000)
    return [e for e in events if e["type"] == kind]


async def running_on(backend: FakeBackend, count: int = 1, prompt: int = 1) -> FakeSandbox:
    """The ``count``-th sandbox, once it has been given its ``prompt``-th prompt."""
    sandbox = await asyncio.wait_for(backend.wait_for_sandbox(count), WAIT_S)
    await asyncio.wait_for(sandbox.wait_for_prompt(prompt), WAIT_S)
    return sandbox
