"""pytest plugin (entry point ``cloudws_fake_anthropic``): run Claude Code against a fake API.

Fixtures:

* ``fake_anthropic`` -- a started :class:`FakeAnthropic` (stopped afterwards).
* ``claude_cli_path`` -- the Claude Code CLI bundled with ``claude-agent-sdk``
  (the test is skipped when it is missing).
* ``claude_env`` -- environment variables that run that CLI offline against the fake,
  with its own HOME and CLAUDE_CONFIG_DIR under ``tmp_path``.
* ``git_http`` -- a started :class:`~jupyter_cloudws.testing.git_http.GitHttpServer` (real
  ``git http-backend``, clone and push) serving bare repositories under ``tmp_path``;
  ``git_http.make_remote(name, files)`` returns the URL of a new one with a commit on ``main``.
* ``fake_github`` -- a started fake GitHub REST API (``fake_github.py``) over ``git_http``'s
  repositories, every answer checked against GitHub's OpenAPI description
  (``serving_fake_github(git)`` for one over another git host, or at another scope).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from typing import Any, Iterator

import pytest

from jupyter_cloudws.backends.cli import bundled_cli_path

from .fake_anthropic import FakeAnthropic
from .git_http import GitHttpServer


def bundled_claude_path() -> pathlib.Path | None:
    """The CLI shipped in the claude-agent-sdk wheel, or None."""
    path = bundled_cli_path()
    return pathlib.Path(path) if path and os.access(path, os.X_OK) else None


def claude_env_for(base_url: str, root: pathlib.Path) -> dict[str, str]:
    """A complete environment (not a patch of os.environ) for an offline CLI run."""
    home, config = root / "home", root / "claude-config"
    home.mkdir(parents=True, exist_ok=True)
    config.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(config),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-test-fake-anthropic-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        # bypassPermissions as root requires exactly "1" (an inherited value won't do).
        "IS_SANDBOX": "1",
        "LANG": "C.UTF-8",
    }


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def claude_cli_path() -> pathlib.Path:
    path = bundled_claude_path()
    if path is None:
        pytest.skip("Claude Code CLI not found: claude_agent_sdk/_bundled/claude is missing "
                    "(install the claude-agent-sdk wheel for this platform)")
    return path


@pytest.fixture
def claude_env(fake_anthropic: FakeAnthropic, tmp_path: pathlib.Path) -> dict[str, str]:
    return claude_env_for(fake_anthropic.url, tmp_path / "claude-env")


@pytest.fixture
def git_http(tmp_path: pathlib.Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "git-http") as server:
        yield server


@contextlib.contextmanager
def serving_fake_github(git: GitHttpServer) -> Iterator[Any]:
    """A started :class:`~jupyter_cloudws.testing.fake_github.FakeGitHub` serving ``git``'s
    repositories, stopped afterwards. Without GitHub's OpenAPI description (scripts/test.sh
    fetches it) the test fails and says how to get it, never skips: the fake is only worth
    anything held to that contract."""
    from .github_contract import SpecMissing  # jsonschema takes seconds to import: only when used
    from .fake_github import FakeGitHub

    try:
        fake = FakeGitHub(git)
    except SpecMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    with fake:
        yield fake


@pytest.fixture
def fake_github(git_http: GitHttpServer) -> Iterator[Any]:
    """:func:`serving_fake_github` over ``git_http``."""
    with serving_fake_github(git_http) as fake:
        yield fake
