"""The image a remote sandbox (Modal) runs: Debian slim, git, the pinned Claude Code CLI and this
runtime, with the layout the remote backend and the daemon agree on.

Standard library only at import: the caller passes the ``modal`` module in, so the runtime never
depends on it. Modal builds the image lazily, the first time a sandbox uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RUNTIME_DIR = Path(__file__).resolve().parent
PYTHON_VERSION = "3.12"

# Everything a remote sandbox writes lives under one root: what a snapshot must keep.
ROOT = "/cloudws"
RUNTIME_PARENT = f"{ROOT}/runtime"  # PYTHONPATH: holds the cloudws_sandbox package
WORKDIR = f"{ROOT}/repo"  # the session's work tree
HOME = f"{ROOT}/home"
CONVERSATION_DIR = f"{ROOT}/claude"  # CLAUDE_CONFIG_DIR: the agent's conversation
STATE_PARENT = f"{ROOT}/state"  # one state dir (event log, config, bridge socket) per sandbox started
CONVERSATION_READY = f"{ROOT}/.conversation-in"  # made once a saved conversation was copied in

IMAGE_ENV = {
    "PYTHONPATH": RUNTIME_PARENT,
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "HOME": HOME,
    "CLAUDE_CONFIG_DIR": CONVERSATION_DIR,
    "IS_SANDBOX": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}


def socket_path(launch: str) -> str:
    """The bridge socket of the daemon started as ``launch`` (``attach`` pipes stdio to it). Per
    launch: a socket file carried over in a snapshot must never be taken for the new daemon's."""
    return f"{STATE_PARENT}/{launch}/bridge.sock"


def runtime_image(modal: Any, cli_requirement: str, *, base: Any = None) -> Any:
    """The sandbox image: ``base`` (default Debian slim with Python) plus git, the Claude Code CLI
    (``cli_requirement``, e.g. ``claude-agent-sdk==0.2.184``, whose wheel bundles the CLI: the
    same pin the local backend runs) and this runtime, copied in so snapshots carry it."""
    image = base if base is not None else modal.Image.debian_slim(python_version=PYTHON_VERSION)
    return (
        image.apt_install("git", "ca-certificates")
        .pip_install(cli_requirement)
        .env(IMAGE_ENV)
        .add_local_dir(RUNTIME_DIR, f"{RUNTIME_PARENT}/cloudws_sandbox", copy=True, ignore=["__pycache__", "*.pyc"])
    )
