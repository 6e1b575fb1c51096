"""Every route of the API is authenticated and authorized.

The server runs with ``ServerApp.allow_unauthenticated_access = False``. Requests go through a
plain tornado HTTP client against the server's port, so each test decides exactly which
credentials (if any) a request carries. After every refused request the state is read again with
the right token (or straight from the store) to show that nothing changed.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

SHARED_TOKEN_USER = getpass.getuser()  # who owns what the server's shared token creates
NO_TOKEN: dict[str, str] = {}
WRONG_TOKEN = {"Authorization": "token not-the-server-token"}
CREDENTIALS = {"no token": (NO_TOKEN, {}), "wrong token": (WRONG_TOKEN, {}),
               "wrong token in url": (NO_TOKEN, {"token": "not-the-server-token"})}  # fmt: skip

# (method, path under cloudws/api/, body); {sid} is an existing session, {repo} a git repository.
ROUTES = [
    ("GET", "status", None),
    ("GET", "sessions", None),
    ("POST", "sessions", {"repo": "{repo}", "title": "Intruder"}),
    ("GET", "sessions/{sid}", None),
    ("PATCH", "sessions/{sid}", {"title": "Hijacked", "archived": True}),
    ("POST", "sessions/{sid}/prompts", {"text": "please delete everything", "client_request_id": "x"}),
    ("POST", "sessions/{sid}/stop", {}),
    ("GET", "sessions/{sid}/events", None),
    ("GET", "sessions/{sid}/changes", None),
    ("GET", "sessions/{sid}/artifacts", None),
    ("GET", "sessions/{sid}/pull-request/draft", None),
    ("GET", "github/repos", None),
]
# Without terminals (not ours), any route lacking an authentication decorator would warn: as
# an error here, that fails the server's start.
pytestmark = pytest.mark.filterwarnings("error::jupyter_server.utils.JupyterServerAuthWarning")

# The WebSockets: a session's stream, and the JupyterLab panel's channel.
WS_ROUTES = ["sessions/{sid}/ws", "panel"]
ROUTE_IDS = [f"{m} {p}" for m, p, _ in ROUTES]
WRITES = [r for r in ROUTES if r[0] != "GET"]
READS = [r for r in ROUTES if r[0] == "GET"]


class ReadOnlyAuthorizer(Authorizer):
    """Lets users look at cloudws sessions, never change them."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource == "cloudws" and action == "read"


class NoCloudwsAuthorizer(Authorizer):
    """Everything but cloudws."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "cloudws"


@pytest.fixture
def authorizer_class() -> type[Authorizer] | None:
    """The server's authorizer; tests parametrize this to install their own."""
    return None


@pytest.fixture
def jp_server_config(jp_server_config: dict, authorizer_class: type[Authorizer] | None) -> dict:
    server = {**jp_server_config["ServerApp"], "allow_unauthenticated_access": False}
    server["jpserver_extensions"] = {**server["jpserver_extensions"], "jupyter_server_terminals": False}
    if authorizer_class is not None:
        server["authorizer_class"] = authorizer_class
    return {**jp_server_config, "ServerApp": server}


class RawClient:
    """HTTP and WebSocket requests with exactly the headers given: no token added."""

    def __init__(self, port: int, base_url: str, token: str) -> None:
        self.root = f"127.0.0.1:{port}{base_url}cloudws/api/"
        self.token = token
        self.client = AsyncHTTPClient()

    @property
    def right(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        url = "http://" + self.root + path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        data = None if method == "GET" else json.dumps(body if body is not None else {})
        response = await self.client.fetch(
            url, method=method, body=data, headers=dict(headers or {}), raise_error=False, follow_redirects=False,
            request_timeout=20,
        )  # fmt: skip
        text = response.body.decode() if response.body else ""
        try:
            return response.code, json.loads(text) if text else None
        except ValueError:
            return response.code, text

    async def ws(self, session_id: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
                 path: str = "sessions/{sid}/ws"):  # fmt: skip
        query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
        request = HTTPRequest(f"ws://{self.root}{path.format(sid=session_id)}{query}", headers=dict(headers or {}),
                              connect_timeout=20, request_timeout=20)  # fmt: skip
        return await websocket_connect(request)


@pytest.fixture
def raw(jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_base_url: str) -> RawClient:
    return RawClient(jp_http_port, jp_base_url, jp_serverapp.identity_provider.token)


@pytest.fixture
def hub(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["cloudws_hub"]


def fill(value: Any, **names: str) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: fill(v, **names) for k, v in value.items()}
    return value


async def snapshot(raw: RawClient, hub: Any, session_id: str) -> dict[str, Any]:
    """Everything a refused request could have changed, read with the right token."""
    code, listing = await raw.call("GET", "sessions", headers=raw.right, params={"archived": "all"})
    assert code == 200, listing
    code, session = await raw.call("GET", f"sessions/{session_id}", headers=raw.right)
    assert code == 200, session
    code, events = await raw.call("GET", f"sessions/{session_id}/events", headers=raw.right)
    assert code == 200, events
    return {
        "sessions": listing["sessions"],
        "session": session,
        "events": events["events"],
        "prompts": hub.store.active_prompts(session_id),
        "runners": sorted(hub._runners),  # a prompt or Stop would have woken a runner
    }


# -- REST: no credentials, wrong credentials ------------------------------------------------


@pytest.mark.parametrize("credentials", list(CREDENTIALS), ids=list(CREDENTIALS))
@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_a_request_without_the_right_token_is_refused_and_changes_nothing(
    raw, hub, make_repo, credentials, method, path, body
):
    repo = make_repo()
    code, session = await raw.call("POST", "sessions", {"repo": str(repo), "title": "Mine"}, headers=raw.right)
    assert code == 201, session
    before = await snapshot(raw, hub, session["id"])

    headers, params = CREDENTIALS[credentials]
    names = {"sid": session["id"], "repo": str(repo)}
    code, reply = await raw.call(method, fill(path, **names), fill(body, **names), headers=headers, params=params)

    assert code in (401, 403), (code, reply)
    assert await snapshot(raw, hub, session["id"]) == before
    sandboxes = Path(hub.backend.root_dir)
    assert not sandboxes.exists() or not any(sandboxes.iterdir()), "a sandbox was started"


async def test_the_same_requests_with_the_right_token_get_through(raw, hub, make_repo):
    """The refusals above are about credentials, not about wrong URLs or bodies."""
    repo = make_repo()
    code, session = await raw.call("POST", "sessions", {"repo": str(repo)}, headers=raw.right)
    assert code == 201
    names = {"sid": session["id"], "repo": str(repo)}
    for method, path, body in ROUTES:
        if path.endswith("/prompts"):
            body = {"text": ""}  # reaches validation (400) without starting a sandbox
        code, reply = await raw.call(method, fill(path, **names), fill(body, **names), headers=raw.right)
        assert code in (200, 201, 202, 400), (method, path, code, reply)
        assert code != 400 or path.endswith("/prompts"), (method, path, reply)


# -- WebSocket -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", WS_ROUTES)
@pytest.mark.parametrize("credentials", list(CREDENTIALS), ids=list(CREDENTIALS))
async def test_a_websocket_without_the_right_token_is_refused(raw, hub, make_repo, credentials, path):
    code, session = await raw.call("POST", "sessions", {"repo": str(make_repo())}, headers=raw.right)
    assert code == 201
    headers, params = CREDENTIALS[credentials]
    with pytest.raises(HTTPClientError) as refused:
        await raw.ws(session["id"], headers=headers, params=params, path=path)
    assert refused.value.code in (401, 403)
    assert hub._runners == {}, "the refused socket reached the hub"

    conn = await raw.ws(session["id"], headers=raw.right, path=path)  # and the right token opens it
    try:
        if path == "panel":
            hello = json.loads(await conn.read_message())
            assert hello["type"] == "hello" and [s["id"] for s in hello["state"]["sessions"]] == [session["id"]]
        else:
            await conn.write_message(json.dumps({"type": "ping"}))
            assert json.loads(await conn.read_message()) == {"type": "pong"}
    finally:
        conn.close()


# -- a custom authorizer -------------------------------------------------------------------


@pytest.mark.parametrize("authorizer_class", [ReadOnlyAuthorizer])
async def test_a_read_only_user_can_look_but_not_change_anything(raw, hub, make_repo):
    repo = make_repo()
    session = hub.create_session({"repo": str(repo), "title": "Theirs"}, owner=SHARED_TOKEN_USER)
    names = {"sid": session["id"], "repo": str(repo)}
    before = await snapshot(raw, hub, session["id"])
    assert before["sessions"] == [session]

    for method, path, body in READS:
        code, reply = await raw.call(method, fill(path, **names), headers=raw.right)
        assert code == 200, (method, path, reply)
    for method, path, body in WRITES:
        code, reply = await raw.call(method, fill(path, **names), fill(body, **names), headers=raw.right)
        assert code == 403, (method, path, code, reply)
        assert isinstance(reply, dict) and reply.get("code") and reply.get("message"), reply
    assert await snapshot(raw, hub, session["id"]) == before


@pytest.mark.parametrize("authorizer_class", [ReadOnlyAuthorizer])
async def test_a_read_only_user_can_watch_a_session_over_the_websocket_but_not_prompt(raw, hub, make_repo):
    session = hub.create_session({"repo": str(make_repo())}, owner=SHARED_TOKEN_USER)
    conn = await raw.ws(session["id"], headers=raw.right)

    async def exchange(frame: dict[str, Any]) -> dict[str, Any]:
        await conn.write_message(json.dumps(frame))
        raw_frame = await conn.read_message()
        assert raw_frame is not None, "the hub closed the socket"
        return json.loads(raw_frame)

    try:
        subscribed = await exchange({"type": "subscribe"})
        assert subscribed["type"] == "subscribed" and subscribed["session"]["id"] == session["id"]
        for frame in ({"type": "prompt", "text": "Please delete everything"}, {"type": "stop"}, {"type": "typing"}):
            reply = await exchange(frame)
            assert (reply["type"], reply["code"]) == ("error", "forbidden"), (frame, reply)
            assert await exchange({"type": "ping"}) == {"type": "pong"}, "the socket stays usable"
    finally:
        conn.close()
    assert hub.store.active_prompts(session["id"]) == []
    assert hub.store.events_after(session["id"], 0, 100) == ([], False), "nothing was logged"
    assert hub.store.get_session(session["id"])["sandbox_status"] == "stopped", "no sandbox was started"


@pytest.mark.parametrize("authorizer_class", [ReadOnlyAuthorizer])
async def test_a_read_only_user_sees_sessions_in_the_panel_and_every_action_is_refused(raw, hub, make_repo):
    repo = make_repo()
    session = hub.create_session({"repo": str(repo), "title": "Theirs"}, owner=SHARED_TOKEN_USER)
    before = await snapshot(raw, hub, session["id"])
    conn = await raw.ws("", headers=raw.right, path="panel")

    async def next_frame() -> dict[str, Any]:
        raw_frame = await conn.read_message()
        assert raw_frame is not None, "the server closed the panel"
        return json.loads(raw_frame)

    async def send(content: dict[str, Any]) -> None:
        await conn.write_message(json.dumps({"type": "msg", "content": content}))

    try:
        assert (await next_frame())["type"] == "hello"
        await send({"type": "open_session", "id": session["id"]})  # reading is allowed
        while (frame := await next_frame())["type"] != "state" or "session" not in frame["changes"]:
            pass
        assert frame["changes"]["session"]["title"] == "Theirs"
        actions = [{"type": "send", "text": "Please delete everything"}, {"type": "stop"}, {"type": "typing"},
                   {"type": "rename", "title": "Hijacked"}, {"type": "archive"},
                   {"type": "new_session", "repo": str(repo)}, {"type": "warm_repo", "repo": str(repo)},
                   {"type": "pr_create", "title": "Mine now"}]  # fmt: skip
        for content in actions:
            await send(content)
            while (reply := await next_frame())["type"] != "error":
                assert reply["type"] == "msg" or "error" not in reply.get("changes", {}), reply
            assert reply["code"] == "forbidden" and content["type"] in reply["message"], (content, reply)
    finally:
        conn.close()
    assert await snapshot(raw, hub, session["id"]) == before
    assert hub.store.get_session(session["id"])["sandbox_status"] == "stopped", "no sandbox was started"


@pytest.mark.parametrize("authorizer_class", [NoCloudwsAuthorizer])
async def test_a_user_who_may_not_read_gets_nothing(raw, hub, make_repo):
    repo = make_repo()
    session = hub.create_session({"repo": str(repo), "title": "Secret plans"}, owner=SHARED_TOKEN_USER)
    names = {"sid": session["id"], "repo": str(repo)}
    for method, path, body in ROUTES:
        code, reply = await raw.call(method, fill(path, **names), fill(body, **names), headers=raw.right)
        assert code == 403, (method, path, code, reply)
        assert session["title"] not in json.dumps(reply), "a refusal leaks nothing about the session"
    for path in WS_ROUTES:
        with pytest.raises(HTTPClientError) as refused:
            await raw.ws(session["id"], headers=raw.right, path=path)
        assert refused.value.code == 403, path
    assert hub.store.list_sessions(archived=None) == [hub.store.get_session(session["id"])]
    assert hub.store.get_session(session["id"]) == session
    assert hub.store.active_prompts(session["id"]) == []
