"""Fixtures for the browser tests: JupyterLab with the extension in a subprocess, driven by Debian's
headless Chromium through Playwright's sync API (plain, non-async tests).

* ``lab`` (module) -- a started JupyterLab ``ServerProcess``; its root dir is ``lab.work_dir``.
  Override the module-scoped ``lab_files`` ({relative path: str | bytes | Path to copy}) or
  ``lab_cloudws_config`` (extra ``c.CloudWorkspaces`` settings) or ``lab_server_config`` (other
  sections of the server's config, e.g. ``{"GitHub": {...}}``) in a test module to change it.
* ``lab_fake_anthropic`` (module) -- the ``FakeAnthropic`` every sandbox of ``lab`` talks to.
* ``git_host``, ``github`` (module) -- a loopback git host and the fake GitHub over it.
* ``browser`` (module) -- Chromium (``/usr/bin/chromium``; the module is skipped without it).
* ``page`` -- a fresh context and page (1400x900). On teardown: ``final.png`` and ``console.txt``
  in ``test-output/<test name>/``.
* ``page_errors`` -- console errors and uncaught page errors of ``page``, as strings.
* ``shot`` -- ``shot(name)`` saves ``test-output/<test name>/<name>.png`` now.
* ``lab_page`` -- ``LabPage(page, lab)`` (see ``lab_helpers``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from lab_helpers import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, LabPage
from support import kill_sandboxes

from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic
from jupyter_cloudws.testing.git_http import GitHttpServer
from jupyter_cloudws.testing.pytest_plugin import serving_fake_github
from jupyter_cloudws.testing.server import ServerProcess

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output"


# --- pytest-jupyter ----------------------------------------------------------------------------
# Its autouse fixtures take "the" asyncio loop of the thread, which inside a Playwright sync session
# is Playwright's own, running one: they would close it under Playwright's feet. These tests start
# no in-process server, so they get a private loop and no server cleanup.


@pytest.fixture
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def jp_server_cleanup() -> None:
    return None


# --- the server --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def lab_files() -> dict[str, str | bytes | Path]:
    """Files put in the lab's root dir before it starts: {relative path: text, bytes or a Path to copy}."""
    return {}


@pytest.fixture(scope="module")
def lab_cloudws_config() -> dict[str, Any]:
    """Extra ``c.CloudWorkspaces`` settings for the module's lab."""
    return {}


@pytest.fixture(scope="module")
def git_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    """A git host on loopback for the module (``git http-backend``)."""
    with GitHttpServer(tmp_path_factory.mktemp("git-host")) as server:
        yield server


@pytest.fixture(scope="module")
def github(git_host: GitHttpServer) -> Iterator[Any]:
    """The fake GitHub over ``git_host``; a module passes it to its lab with ``lab_server_config``."""
    with serving_fake_github(git_host) as fake:
        yield fake


@pytest.fixture(scope="module")
def lab_server_config() -> dict[str, Any]:
    """More sections of the module's lab's server config (``{"GitHub": {...}}``)."""
    return {}


@pytest.fixture(scope="module")
def lab_app() -> str:
    """Which application the module's ``lab`` runs: ``"jupyterlab"``, or ``"notebook"`` (Notebook 7)."""
    return "jupyterlab"


@pytest.fixture(scope="module")
def lab(
    lab_app: str,
    tmp_path_factory: pytest.TempPathFactory,
    lab_fake_anthropic: FakeAnthropic,
    lab_files: dict[str, str | bytes | Path],
    lab_cloudws_config: dict[str, Any],
    lab_server_config: dict[str, Any],
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("lab")
    data_dir = root / "cloudws-data"
    config = {
        "data_dir": str(data_dir),
        "sandbox_env": {
            "ANTHROPIC_BASE_URL": lab_fake_anthropic.url,
            "ANTHROPIC_API_KEY": "sk-test-cloudws",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        },
        "local_user_name": "Ada Lovelace",
        "local_user_email": "ada@example.test",
        "local_repo_roots": [str(root)],  # tests make their repositories under the lab's root
        **lab_cloudws_config,
    }
    server = ServerProcess(root, cloudws_config=config, app=lab_app, config=lab_server_config)
    server.work_dir.mkdir(parents=True, exist_ok=True)
    for rel, content in lab_files.items():
        target = server.work_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    started = time.monotonic()
    server.start(timeout_s=60)
    server.started_in_s = time.monotonic() - started  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()
        kill_sandboxes(data_dir)


# --- the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class BrowserPage(NamedTuple):
    page: Any
    errors: list[str]
    shot: Callable[[str], Path]


@pytest.fixture
def test_output_dir(request: pytest.FixtureRequest) -> Path:
    """``test-output/<test name>/`` under the repository, emptied for this run of the test."""
    out = OUTPUT / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@pytest.fixture
def _browser_page(browser: Any, test_output_dir: Path) -> Iterator[BrowserPage]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    console: list[str] = []

    def on_console(message: Any) -> None:
        console.append(f"[{message.type}] {message.text}")
        if message.type == "error":
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    # Leaving a notebook with unsaved changes asks "leave page?"; a user reloading says yes.
    page.on("dialog", lambda dialog: dialog.accept())

    def shot(name: str) -> Path:
        path = test_output_dir / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    try:
        yield BrowserPage(page, errors, shot)
    finally:
        try:
            shot("final")
        except Exception as exc:  # noqa: BLE001 - a dead page must not hide the test's own failure
            (test_output_dir / "final.txt").write_text(f"no screenshot: {exc}\n")
        (test_output_dir / "console.txt").write_text("\n".join(console + errors) + "\n")
        context.close()


@pytest.fixture
def page(_browser_page: BrowserPage) -> Any:
    """A Playwright sync ``Page`` in a fresh context (1400x900)."""
    return _browser_page.page


@pytest.fixture
def page_errors(_browser_page: BrowserPage) -> list[str]:
    """Console errors and uncaught exceptions of ``page`` so far ("console: ..." / "pageerror: ...")."""
    return _browser_page.errors


@pytest.fixture
def shot(_browser_page: BrowserPage) -> Callable[[str], Path]:
    """``shot(name)``: a screenshot of ``page`` now, as ``test-output/<test name>/<name>.png``."""
    return _browser_page.shot


@pytest.fixture
def lab_page(page: Any, lab: ServerProcess) -> LabPage:
    """Helpers for ``page`` on ``lab``: open a notebook, run cells, wait for outputs, save, reload."""
    return LabPage(page, lab)
