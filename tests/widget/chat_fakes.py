"""Stand-ins for the chat controller's client and sessions: the stream callbacks and the
throttled re-renders are handed to the test, which runs them when it chooses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Callback = Callable[[str, dict[str, Any]], None]


class FakeLoop:
    """The client's stream loop, as the widget uses it: re-renders wait until the test runs them."""

    def __init__(self) -> None:
        self.later: list[Callable[[], None]] = []

    def call_later(self, delay_s: float, callback: Callable[..., None], *args: Any) -> None:
        self.later.append(lambda: callback(*args))


class FakeSession:
    def __init__(self, sid: str, title: str) -> None:
        self.id, self.title, self.branch, self.status = sid, title, f"cloudws/{sid[:8]}", "idle"
        self.repo, self.model, self.base_branch, self.sandbox_status = "/repo", None, "main", "ready"
        self.archived, self.created_at, self.updated_at = False, 1.0, 1.0
        self.callbacks: list[Callback] = []  # every subscription, even after unsubscribe
        self.prompts: list[str] = []

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: None

    def prompt(self, text: str, model: str | None = None) -> str:
        self.prompts.append(text)
        return "m2"

    def rename(self, title: str) -> None:
        self.title = title

    def stop(self) -> None:
        pass

    def warm_up(self) -> None:
        pass


class FakeClient:
    def __init__(self, *sessions: FakeSession) -> None:
        self._loop = FakeLoop()
        self.by_id = {s.id: s for s in sessions}

    def sessions(self, q: str | None = None) -> list[FakeSession]:
        return list(self.by_id.values())

    def recent_repos(self) -> list[str]:
        return ["/repo"]

    def session(self, sid: str) -> FakeSession:
        return self.by_id[sid]
