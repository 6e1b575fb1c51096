"""Where the sandbox finds the Claude Code CLI when its config names none (a remote image: the CLI
comes with the ``claude-agent-sdk`` wheel installed there)."""

from __future__ import annotations

import importlib.util
import os
import shutil


def find_cli() -> str | None:
    """``claude`` on PATH, else the CLI bundled in an installed ``claude-agent-sdk`` (found
    without importing it)."""
    on_path = shutil.which("claude")
    if on_path:
        return on_path
    try:
        spec = importlib.util.find_spec("claude_agent_sdk")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(location, "_bundled", "claude")
        if os.access(path, os.X_OK):
            return path
    return None
