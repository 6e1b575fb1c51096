"""Exceptions of the kernel-side client: the hub's refusals, discovery, prompts, the stream."""

from __future__ import annotations

from typing import Any


class CloudwsError(Exception):
    """The hub refused a request. ``status`` is the HTTP status (0 when the server could not be
    reached), ``code`` the hub's machine-readable error code, ``message`` its explanation."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})" if status else f"{message} ({code})")
        self.status = status
        self.code = code
        self.message = message


class UnknownSession(CloudwsError, KeyError):
    """No session has this id (404 ``unknown_session``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return CloudwsError.__str__(self)


class BadRepo(CloudwsError):
    """The repository is not one the hub accepts (``bad_repo``, ``credentials_in_url``,
    ``repo_outside_roots``)."""


class SessionArchived(CloudwsError):
    """The session is archived; unarchive it to send prompts (409 ``archived``)."""


class QueueFull(CloudwsError):
    """Too many prompts wait behind the running one (429 ``queue_full``)."""


class PromptTooLarge(CloudwsError):
    """The prompt is bigger than the hub accepts (413 ``prompt_too_large``)."""


class NotAuthorized(CloudwsError):
    """The server rejected the token, or the user may not do this (401, 403)."""


class ServerUnreachable(CloudwsError, ConnectionError):
    """The server did not answer at all (status 0): it is down, or the URL is wrong."""


class ConnectionLost(CloudwsError, ConnectionError):
    """The live stream gave up reconnecting; the next ``.prompt()`` or ``.events`` retries."""


_BY_CODE: dict[str, type[CloudwsError]] = {
    "unknown_session": UnknownSession,
    "bad_repo": BadRepo,
    "credentials_in_url": BadRepo,
    "repo_outside_roots": BadRepo,
    "archived": SessionArchived,
    "queue_full": QueueFull,
    "prompt_too_large": PromptTooLarge,
}


def error_from_response(status: int, body: Any, fallback_text: str = "") -> CloudwsError:
    """The exception for an error answer of the hub: its ``{code, message}`` when it sent one,
    else what jupyter-server or a proxy in front of it said."""
    # The hub's routes answer ``{code, message}``; some name the code ``error``.
    code_key = next((k for k in ("code", "error") if isinstance(body, dict) and isinstance(body.get(k), str)), None)
    if code_key is not None:
        code, message = body[code_key], str(body.get("message") or body[code_key])
    else:
        code = f"http_{status}"
        message = (body.get("message") if isinstance(body, dict) else None) or fallback_text.strip()[:300]
        message = message or f"HTTP {status}"
    cls = _BY_CODE.get(code)
    if cls is None and status in (401, 403):
        cls = NotAuthorized
    return (cls or CloudwsError)(status, code, message)


class ServerNotFound(ConnectionError):
    """No Jupyter server with jupyter_cloudws answered; the message lists every place tried."""

    def __init__(self, tried: list[tuple[str, str]], hint: str) -> None:
        lines = ["No Jupyter server with jupyter_cloudws answered. Tried:"]
        lines += [f"  - {where}: {why}" for where, why in tried] or ["  - nothing (no place to look)"]
        lines.append(hint)
        super().__init__("\n".join(lines))
        self.tried = tried


class PromptFailed(RuntimeError):
    """A prompt ended with ``success: false`` without being stopped."""

    def __init__(self, message_id: str, error: str | None) -> None:
        super().__init__(f"prompt {message_id} failed: {error or 'no error text'}")
        self.message_id = message_id
        self.error = error
