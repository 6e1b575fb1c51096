"""REST and WebSocket routes under ``{base_url}cloudws/api/``.

Every route requires an authenticated user (jupyter-server's identity provider) and asks the
authorizer: ``read`` for GET and subscribing, ``write`` for changes, prompts and Stop, on the
resource ``cloudws``. Sessions belong to the user who created them: each route hands the hub a
:class:`~.hub.Requester` and the hub shows a user only their own sessions, unless the authorizer
grants ``admin`` on ``cloudws`` (see :meth:`CloudwsMixin.requester`). Errors are JSON
``{"code": ..., "message": ...}``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_server.auth import AllowAllAuthorizer
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import ensure_async
from tornado import web, websocket

from . import __version__
from .hub import HubError, Requester, SessionHub, protocol_error
from cloudws_sandbox.protocol import (
    Ping,
    PromptRequest,
    ProtocolError,
    Stop,
    Subscribe,
    Typing,
    dumps,
    parse_client_frame,
    parse_prompt,
    pong_frame,
    prompt_accepted_frame,
)

AUTH_RESOURCE = "cloudws"
ADMIN_ACTION = "admin"  # granted on AUTH_RESOURCE, it lets a user see and act on every session
# Asked only of a user the authorizer made admin: an authorizer that grants this too grants
# everything (jupyter-server's AllowAllAuthorizer, JupyterHub's single-user one), so it makes no admins.
_PROBE_ACTION, _PROBE_RESOURCE = "cloudws-never-granted", "cloudws-probe"
_ANONYMOUS_ID = re.compile(r"[0-9a-f]{32}")  # jupyter-server's id for a token-only user
# A client whose unsent frames pass the outbox limit is dropped with this close code; it
# reconnects and subscribes after the last seq it has, losing nothing.
CLOSE_TOO_SLOW = 4008


def outbox_admits(pending_bytes: int, size_bytes: int, max_bytes: int, *, replay: bool) -> bool:
    """Whether a frame of ``size_bytes`` may join ``pending_bytes`` waiting for a client. A replay
    the client asked for may pass the limit alone (replay_limit bounds it), never on top of
    frames still waiting: a client re-subscribing without reading would grow it without end."""
    if pending_bytes + size_bytes <= max_bytes:
        return True
    return replay and pending_bytes == 0


class CloudwsMixin(ExtensionHandlerMixin):
    auth_resource = AUTH_RESOURCE

    @property
    def hub(self) -> SessionHub:
        return self.settings["cloudws_hub"]

    def author(self) -> dict[str, Any]:
        """Who is asking, as the commit author: the Jupyter user, or, when jupyter-server knows
        only an anonymous holder of the shared token, the person running the server."""
        user = self.current_user
        username = getattr(user, "username", None) or ""
        name = getattr(user, "display_name", None) or getattr(user, "name", None) or username
        if not username or (_ANONYMOUS_ID.fullmatch(username) and name.startswith("Anonymous ")):
            return dict(self.settings["cloudws_local_user"])
        domain = self.settings.get("cloudws_git_email_domain", "users.noreply.jupyter")
        return {"username": username, "name": name, "email": f"{username}@{domain}"}

    async def requester(self) -> Requester:
        """Who is asking, for the hub: the username sessions are owned by (as :meth:`author`) and
        whether the authorizer grants ``admin`` on ``cloudws`` without granting everything."""
        user = self.current_user

        async def granted(action: str, resource: str) -> bool:
            return bool(await ensure_async(self.authorizer.is_authorized(self, user, action, resource)))

        is_admin = await granted(ADMIN_ACTION, AUTH_RESOURCE)
        if is_admin and await granted(_PROBE_ACTION, _PROBE_RESOURCE):
            is_admin = False
            # jupyter-server's default needs no warning: nobody expects admins on a laptop.
            if not isinstance(self.authorizer, AllowAllAuthorizer) and not self.settings.get(
                "cloudws_warned_blanket_authorizer"
            ):
                self.settings["cloudws_warned_blanket_authorizer"] = True
                self.log.warning("jupyter_cloudws: the authorizer (%s) grants every action, so nobody is a cloudws "
                                 "admin; grant 'admin' on 'cloudws' to chosen users only", type(self.authorizer).__name__)  # fmt: skip
        return Requester(self.author()["username"], is_admin)


def hub_errors(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Turn refusals from the hub or the protocol into JSON errors with their status."""

    @functools.wraps(method)
    async def wrapper(self: CloudwsAPIHandler, *args: Any, **kwargs: Any) -> None:
        try:
            await method(self, *args, **kwargs)
        except ProtocolError as exc:
            self._send_error(protocol_error(exc))
        except HubError as exc:
            self._send_error(exc)

    return wrapper


class CloudwsAPIHandler(CloudwsMixin, APIHandler):
    def _send_error(self, exc: HubError) -> None:
        self.set_status(exc.status)
        self.finish({"code": exc.code, "message": exc.message})

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish({"code": "http_" + str(status_code), "message": message})

    def json_object(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise HubError(400, "malformed", f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise HubError(400, "malformed", "the request body must be a JSON object")
        return body

    def int_argument(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise HubError(400, "bad_request", f"{name!r} must be an integer") from None
        if value < minimum:
            raise HubError(400, "bad_request", f"{name!r} must be at least {minimum}")
        return value


class StatusHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        backend = self.hub.backend
        self.finish({"version": __version__, "backend": backend.name, "isolation": backend.isolation_label})


class SessionsHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("read")
    @hub_errors
    async def get(self) -> None:
        raw = (self.get_query_argument("archived", "false") or "false").lower()
        archived = {"true": True, "1": True, "false": False, "0": False, "all": None}.get(raw, "bad")
        if archived == "bad":
            raise HubError(400, "bad_request", "'archived' must be true, false or all")
        q = self.get_query_argument("q", None)
        sessions = self.hub.list_sessions(await self.requester(), q=q, archived=archived)  # type: ignore[arg-type]
        self.finish({"sessions": sessions})

    @web.authenticated
    @authorized("write")
    @hub_errors
    async def post(self) -> None:
        session = self.hub.create_session(self.json_object(), owner=self.author()["username"])
        self.set_status(201)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + session["id"])
        self.finish(session)


class SessionHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("read")
    @hub_errors
    async def get(self, session_id: str) -> None:
        self.finish(self.hub.get_session(session_id, await self.requester()))

    @web.authenticated
    @authorized("write")
    @hub_errors
    async def patch(self, session_id: str) -> None:
        self.finish(self.hub.update_session(session_id, self.json_object(), await self.requester()))


class PromptsHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("write")
    @hub_errors
    async def post(self, session_id: str) -> None:
        who = await self.requester()
        self.hub.get_session(session_id, who)  # an unknown session is a 404 whatever the body
        request = parse_prompt(self.json_object(), max_prompt_bytes=self.hub.settings.max_prompt_bytes)
        accepted = self.hub.submit_prompt(session_id, request, self.author(), who)
        self.set_status(202)
        self.finish(accepted)


class StopHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("write")
    @hub_errors
    async def post(self, session_id: str) -> None:
        await self.hub.stop(session_id, await self.requester())
        self.set_status(202)
        self.finish({"stopping": True})


class EventsHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("read")
    @hub_errors
    async def get(self, session_id: str) -> None:
        after = self.int_argument("after", 0)
        limit = self.int_argument("limit", self.hub.settings.replay_limit, minimum=1)
        events, has_more = self.hub.events_page(session_id, after, limit, await self.requester())
        self.finish({"events": events, "has_more": has_more})


class ChangesHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("read")
    @hub_errors
    async def get(self, session_id: str) -> None:
        prompt_id = self.get_query_argument("prompt", None) or None
        self.finish(await self.hub.changes(session_id, await self.requester(), prompt_id))


class PrebuildsHandler(CloudwsAPIHandler):
    """Repository images. Anyone who may create sessions (``write``) may prebuild a repository
    they could open a session on; the repository and branch are checked as a session's are."""

    @web.authenticated
    @authorized("read")
    @hub_errors
    async def get(self) -> None:
        self.finish({"prebuilds": self.hub.prebuilds.list(await self.requester())})

    @web.authenticated
    @authorized("write")
    @hub_errors
    async def post(self) -> None:
        body = self.json_object()
        unknown = set(body) - {"repo", "branch"}
        if unknown:
            raise HubError(400, "bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
        record, started = self.hub.prebuilds.request(body.get("repo"), body.get("branch"), await self.requester())
        self.set_status(202)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + record["id"])
        self.finish({**record, "already_running": not started})


class PrebuildHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("read")
    @hub_errors
    async def get(self, build_id: str) -> None:
        self.finish(self.hub.prebuilds.get(build_id, await self.requester()))


class WarmHandler(CloudwsAPIHandler):
    """The new-session form chose a repository: build its image now if it has none, so the
    session created a moment later starts from it. Rate-limited per user and repository."""

    @web.authenticated
    @authorized("write")
    @hub_errors
    async def post(self) -> None:
        body = self.json_object()
        self.finish(self.hub.prebuilds.warm(body.get("repo"), body.get("branch"), await self.requester()))


class SessionSocketHandler(WebSocketMixin, CloudwsMixin, JupyterHandler, websocket.WebSocketHandler):
    """The live stream of one session: subscribe with replay, then prompts, Stop, typing, ping."""

    session_id: str

    @ws_authenticated
    async def get(self, session_id: str) -> None:  # type: ignore[override]
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)):
            raise web.HTTPError(403)
        try:
            self.hub.get_session(session_id, await self.requester())
        except HubError as exc:
            raise web.HTTPError(exc.status, exc.message) from None
        self.session_id = session_id
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._outbox_bytes = 0  # UTF-8 size of the frames waiting in the outbox
        self._too_slow = False
        self._unsubscribe: Callable[[], None] | None = None
        self._writer: asyncio.Task[None] | None = None
        await super().get(session_id=session_id)

    def open(self, session_id: str) -> None:  # type: ignore[override]
        super().open()  # WebSocketMixin's keep-alive pings
        self._writer = asyncio.get_running_loop().create_task(self._write_frames())

    def _enqueue(self, frame: dict[str, Any], *, always: bool = False) -> None:
        """Queue a frame for the client. Past the outbox limit the client is dropped. A replay it
        asked for (``always``) may pass the limit alone (it is bounded by replay_limit), but not
        on top of frames still waiting: else re-subscribing without reading grows it for ever."""
        if self._too_slow:
            return
        text = dumps(frame)
        size_bytes = len(text.encode())
        if not outbox_admits(self._outbox_bytes, size_bytes, self.hub.settings.websocket_outbox_max_bytes,
                             replay=always):  # fmt: skip
            self._drop_slow_client()
            return
        self._outbox_bytes += size_bytes
        self._outbox.put_nowait(text)

    def _drop_slow_client(self) -> None:
        self._too_slow = True
        self._drop_subscription()
        self.log.info("cloudws: dropping a WebSocket client of session %s that fell %d bytes behind",
                      self.session_id, self._outbox_bytes)  # fmt: skip
        self.close(CLOSE_TOO_SLOW, "too far behind: reconnect and subscribe after your last seq")

    async def _write_frames(self) -> None:
        while (text := await self._outbox.get()) is not None:
            self._outbox_bytes -= len(text.encode())
            try:
                await self.write_message(text)
            except websocket.WebSocketClosedError:
                return

    def _drop_subscription(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def _may(self, action: str) -> bool:
        allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, action, AUTH_RESOURCE))
        if not allowed:
            self._enqueue({"type": "error", "code": "forbidden", "message": f"not allowed to {action} cloudws"})
        return bool(allowed)

    async def on_message(self, message: str | bytes) -> None:
        try:
            frame = parse_client_frame(message, max_prompt_bytes=self.hub.settings.max_prompt_bytes)
            # Asked again for every frame: the authorizer may have taken admin rights away.
            who = await self.requester()
            if isinstance(frame, Subscribe):
                self._drop_subscription()
                subscribed, self._unsubscribe = self.hub.subscribe(self.session_id, frame.after, self._enqueue, who)
                # Queued before any live frame can be: the callback only runs on a later tick.
                self._enqueue(subscribed, always=True)
            elif isinstance(frame, PromptRequest):
                if await self._may("write"):
                    accepted = self.hub.submit_prompt(self.session_id, frame, self.author(), who)
                    self._enqueue(prompt_accepted_frame(accepted["message_id"], accepted["position"],
                                                        frame.client_request_id))  # fmt: skip
            elif isinstance(frame, Stop):
                if await self._may("write"):
                    await self.hub.stop(self.session_id, who)
            elif isinstance(frame, Typing):
                if await self._may("write"):  # warming up starts a sandbox and logs events
                    self.hub.warm_up(self.session_id, who)
            elif isinstance(frame, Ping):
                self._enqueue(pong_frame())
        except ProtocolError as exc:
            self._enqueue(exc.to_frame())
        except HubError as exc:
            if exc.code == "unknown_session":
                self._drop_subscription()  # no longer theirs to watch
            self._enqueue({"type": "error", "code": exc.code, "message": exc.message})

    def on_close(self) -> None:
        self._drop_subscription()
        self._outbox.put_nowait(None)
