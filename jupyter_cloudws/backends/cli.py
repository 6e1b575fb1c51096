"""Where the Claude Code CLI that local sandboxes run comes from."""

from __future__ import annotations

from pathlib import Path


def bundled_cli_path() -> str | None:
    """The Claude Code CLI that ships inside the ``claude-agent-sdk`` wheel, if installed."""
    try:
        import claude_agent_sdk
    except ImportError:
        return None
    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    return str(path) if path.exists() else None
