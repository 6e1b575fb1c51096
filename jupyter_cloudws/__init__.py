"""Claude Code sessions on git repositories, in sandboxes, driven from Jupyter.

In a notebook: ``jupyter_cloudws.connect()`` for the Python API, ``%load_ext jupyter_cloudws``
for the ``%cloudws`` magic. On the server: the ``CloudWorkspaces`` jupyter-server extension.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "connect"]


def connect(url: str | None = None, token: str | None = None) -> Any:
    """A client for the hub of this (or the given) Jupyter server; see ``jupyter_cloudws.client``."""
    from .client import connect as _connect

    return _connect(url, token)


def load_ipython_extension(ipython: Any) -> None:
    from .magic import load_ipython_extension as _load

    _load(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import CloudWorkspaces

    return [{"module": "jupyter_cloudws", "app": CloudWorkspaces}]
