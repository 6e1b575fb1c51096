"""Helpers of the backend contract suite (fixtures are in conftest.py).

The backend contract: the same cases, through a real jupyter-server process, on every backend.

Each case runs against the local backend (real sandboxes under bubblewrap) and the Modal backend
(through ``jupyter_cloudws.testing.fake_modal``, which runs the runtime as local processes and
binds every call against modal 1.6's signatures). Repositories come from a real git HTTP server,
since a Modal sandbox cannot see this machine's paths; the agent is the real Claude Code CLI
against the scripted fake Anthropic API.

Servers are costly, so cases share them where they can: one plain server per backend, one with
a short idle timeout per backend, and a server of their own only for cases that kill, restart or
misconfigure it. Shared servers share the fake API too: every case scripts prompts of its own
(``Case.phrase``), so no two cases' replies can mix.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import kill_sandboxes
from traitlets.config import Config
from traitlets.utils.importstring import import_item

from jupyter_cloudws.backends import BACKENDS
from jupyter_cloudws.backends.base import Liveness, SandboxBackend
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic
from jupyter_cloudws.testing.git_http import GitHttpServer
from jupyter_cloudws.testing.server import ServerProcess

FAKE_MODAL = "jupyter_cloudws.testing.fake_modal"
FAKE_MODAL_ROOT_ENV = "CLOUDWS_FAKE_MODAL_ROOT"
UNREACHABLE_ENV = "CLOUDWS_FAKE_MODAL_UNREACHABLE"
# Credentials the fake accepts (it checks presence, as real modal does before its first call).
FAKE_MODAL_TOKENS = {"MODAL_TOKEN_ID": "ak-contract-test", "MODAL_TOKEN_SECRET": "as-contract-test"}
IDLE_TIMEOUT_S = 2.0
QUIET_EXTENSIONS = {"jupyter_cloudws": True, "jupyterlab": False, "jupyter_lsp": False, "notebook_shim": False,
                    "jupyter_server_terminals": False}  # fmt: skip
API_TIMEOUT_S = 3.0  # long enough that a loaded machine still asks the server within it


@dataclass
class Case:
    """One backend under test: how a server is configured for it, and a way to ask it directly."""

    name: str
    root: Path  # everything of this backend's servers lives here
    fake: FakeAnthropic
    git: GitHttpServer
    sections: dict[str, Any] = field(default_factory=dict)  # config sections besides CloudWorkspaces
    env: dict[str, str | None] = field(default_factory=dict)  # the server's environment changes
    servers: list[ServerProcess] = field(default_factory=list)
    _count: int = 0

    @property
    def backend_class(self) -> type[SandboxBackend]:
        return import_item(BACKENDS[self.name])

    def phrase(self, words: str) -> str:
        """A prompt no other case (on any backend) sends: fake API rules match by substring."""
        self._count += 1
        return f"{words} [{self.name} {self._count}]"

    def sandbox_env(self) -> dict[str, str]:
        return {
            "ANTHROPIC_BASE_URL": self.fake.url,
            "ANTHROPIC_API_KEY": "sk-test-contract",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }

    def server(self, label: str, *, env: dict[str, str | None] | None = None,
               sections: dict[str, Any] | None = None, **cloudws: Any) -> ServerProcess:  # fmt: skip
        """A server (not started) with its own data under ``root/label``."""
        config = {"backend": self.name, "sandbox_env": self.sandbox_env(), "local_user_name": "Ada Lovelace",
                  "local_user_email": "ada@example.test", **cloudws}  # fmt: skip
        # The server needs only this extension: the others would slow each (re)start.
        merged: dict[str, Any] = {"ServerApp": {"jpserver_extensions": {**QUIET_EXTENSIONS}}, **self.sections}
        for name, values in (sections or {}).items():
            merged[name] = {**merged.get(name, {}), **values}
        server = ServerProcess(self.root / label, cloudws_config=config, config=merged, env={**self.env, **(env or {})})
        self.servers.append(server)
        return server

    def backend(self, server: ServerProcess) -> SandboxBackend:
        """A backend of this kind as ``server`` configures it, built in this process."""
        backend = self.backend_class(config=Config(server.config))
        if hasattr(backend, "root_dir"):
            backend.root_dir = str(data_dir(server) / "sandboxes")
        return backend

    def liveness(self, server: ServerProcess, sandbox_id: str) -> Liveness:
        """What the backend itself says of a sandbox (asked from this process, not the hub, in
        the server's environment: only for the call, so nothing leaks into other tests)."""
        with pytest.MonkeyPatch.context() as patch:
            for key, value in server.env.items():
                if value is None:
                    patch.delenv(key, raising=False)
                else:
                    patch.setenv(key, value)
            return asyncio.run(self.backend(server).liveness(sandbox_id))

    def cleanup(self) -> None:
        for server in self.servers:
            server.kill()
            kill_sandboxes(data_dir(server))
        if self.name == "modal" and (self.root / "fake-modal").exists():
            import_item(f"{FAKE_MODAL}.terminate_all")(str(self.root / "fake-modal"))


def data_dir(server: ServerProcess) -> Path:
    """The hub's data directory: ServerProcess points JUPYTER_DATA_DIR at ``root/data``."""
    return server.root / "data" / "cloudws"


def sandbox_id_of(server: ServerProcess, session_id: str) -> str | None:
    """The sandbox the hub's store names for a session (the REST API does not show it)."""
    with sqlite3.connect(f"file:{data_dir(server) / 'cloudws.sqlite'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT sandbox_id FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return row[0] if row else None


def make_case(name: str, root: Path, fake: FakeAnthropic, git: GitHttpServer) -> Case:
    if name == "local":
        return Case(name, root, fake, git)
    fake_root = root / "fake-modal"
    fake_root.mkdir(parents=True)
    sections = {"ModalBackend": {"modal_module": FAKE_MODAL, "app_name": "cloudws-contract",
                                 "api_timeout_s": 30.0}}  # fmt: skip
    env: dict[str, str | None] = {FAKE_MODAL_ROOT_ENV: str(fake_root), UNREACHABLE_ENV: None, **FAKE_MODAL_TOKENS}
    return Case(name, root, fake, git, sections=sections, env=env)


class Hub:
    """The REST API of a server process, synchronously (the server runs apart from the test)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.client = server.client()

    def close(self) -> None:
        self.client.close()

    def new_session(self, repo: str, **fields: Any) -> str:
        response = self.client.post("/sessions", json={"repo": repo, **fields})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def prompt(self, session_id: str, text: str) -> str:
        response = self.client.post(f"/sessions/{session_id}/prompts", json={"text": text})
        assert response.status_code == 202, response.text
        return response.json()["message_id"]

    def session(self, session_id: str) -> dict[str, Any]:
        return self.client.get(f"/sessions/{session_id}").json()

    def events(self, session_id: str) -> list[dict[str, Any]]:
        collected: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.client.get(f"/sessions/{session_id}/events", params={"after": after}).json()
            collected += page["events"]
            if not page["has_more"]:
                return collected
            after = page["events"][-1]["seq"]

    def wait_for(self, session_id: str, predicate: Callable[[dict[str, Any]], bool],
                 timeout_s: float = 90.0) -> list[dict[str, Any]]:  # fmt: skip
        """Every event so far, once one matches ``predicate``."""
        deadline = time.monotonic() + timeout_s
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            events = self.events(session_id)
            if any(predicate(e) for e in events):
                return events
            time.sleep(0.1)
        raise AssertionError(f"no matching event in {timeout_s} s; got {summary(events)}\n{self.server.log_tail()}")

    def wait_complete(self, session_id: str, message_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
        events = self.wait_for(session_id, completes(message_id), timeout_s)
        return next(e for e in events if completes(message_id)(e))


def completes(message_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == "execution_complete" and e["message_id"] == message_id


def status_is(status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == "sandbox_status" and e["status"] == status


def summary(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["seq"], e["type"], e.get("status") or e.get("step") or "", e.get("state", "")) for e in events]


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.1)
    return value


