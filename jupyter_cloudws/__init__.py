"""Claude Code sessions on git repositories, in sandboxes, driven from Jupyter."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import CloudWorkspaces

    return [{"module": "jupyter_cloudws", "app": CloudWorkspaces}]
