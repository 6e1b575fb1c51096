"""The kernel-side client of jupyter_cloudws: drive sessions from notebook code.

    from jupyter_cloudws.client import connect
    client = connect()                       # finds the Jupyter server this kernel belongs to
    session = client.new_session("/path/to/repo.git")
    session.prompt("Add a README")
    session.wait()
    for event in session.events:
        print(event)
"""

from __future__ import annotations

from .api import Client, connect
from .checkout import CheckoutRefused, CheckoutResult
from .discovery import ServerInfo, find_server
from .errors import (
    BadRepo,
    CloudwsError,
    ConnectionLost,
    NotAuthorized,
    PromptFailed,
    PromptTooLarge,
    QueueFull,
    ServerNotFound,
    ServerUnreachable,
    SessionArchived,
    UnknownSession,
)
from .events import Event
from .review import Changes, FileChange, GitRef, NotebookCellChange, PullRequest
from .session import Session

__all__ = [
    "BadRepo",
    "Changes",
    "CheckoutRefused",
    "CheckoutResult",
    "Client",
    "CloudwsError",
    "ConnectionLost",
    "Event",
    "FileChange",
    "GitRef",
    "NotAuthorized",
    "NotebookCellChange",
    "PromptFailed",
    "PromptTooLarge",
    "PullRequest",
    "QueueFull",
    "ServerInfo",
    "ServerNotFound",
    "ServerUnreachable",
    "Session",
    "SessionArchived",
    "UnknownSession",
    "connect",
    "find_server",
]
