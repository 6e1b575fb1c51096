"""Fixtures for driving the hub as a user would: a real jupyter-server with the extension, the
real Claude Code CLI against the scripted fake Anthropic API, and bare git repositories on disk."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub_fakes import make_hub
from jupyter_cloudws.hub import SessionHub
from jupyter_cloudws.store import SessionStore
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic
from jupyter_cloudws.testing.fake_backend import FakeBackend
from hub_api import Api, SessionSocket
from support import kill_sandboxes, make_bare_repo

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# --- pytest-xdist ------------------------------------------------------------------------------
# scripts/test.sh runs the suite on several workers with ``--dist loadgroup``. Left to itself, xdist
# would hand out single tests, and each worker would start its own copy of a module's module-scoped
# servers; and its xdist_group marks do nothing under pytest 9.2 (xdist 3.8 renames tests through
# ``item._nodeid``, which pytest no longer reads). So the groups are made here, from test ids.


def worker_group(nodeid: str) -> str:
    """The tests that run on one worker, one after another: a module, with two wider groups."""
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/backends/contract/"):
        # The contract suite's cases and servers are session-scoped, shared by all its modules.
        return "tests/backends/contract"
    if path.startswith("tests/browser/"):
        # Each module starts JupyterLab and Chromium, the heaviest processes of the suite: one
        # browser module at a time keeps their page waits as far from their timeouts as a serial run.
        return "tests/browser"
    return path


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which may be missing
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None  # xdist's own scheduler for the mode asked for
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """xdist's loadscope (whole groups to a worker, ``--no-loadscope-reorder`` honoured), by
        ``worker_group``."""

        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return GroupScheduling(config, log)


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


@pytest.fixture
def api(jp_serverapp: Any, jp_fetch: Callable[..., Any]) -> Api:
    return Api(jp_fetch)


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
