"""The panel's client asks this same server as the browser's user, never as the server.

A small identity provider makes people from a cookie, as a login cookie would (so jupyter-server
checks the XSRF token of their writes); the server also has its shared token, which the loopback
must never use: a session created through Alice's panel belongs to Alice."""

from __future__ import annotations

import getpass
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_server.auth import IdentityProvider, User
from hub_api import PanelSocket
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_cloudws.panel.loopback import browser_credentials, loopback_url

PERSON_COOKIE = "cloudws-test-person"
XSRF = "5f2b8c0e9d1a4b7c"  # tornado takes a cookie without a version as the raw token


class PeopleByCookie(IdentityProvider):
    def get_user(self, handler: Any) -> Any:
        name = handler.get_cookie(PERSON_COOKIE)
        if name in ("alice", "bob"):
            return User(username=name, name=name.title())
        return super().get_user(handler)


@pytest.fixture
def jp_server_config(jp_server_config: dict) -> dict:
    return {**jp_server_config, "ServerApp": {**jp_server_config["ServerApp"], "identity_provider_class": PeopleByCookie}}


@pytest.fixture
def hub(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["cloudws_hub"]


@pytest.fixture
def browser_panel(jp_serverapp, http_server_client, jp_http_port, jp_base_url):
    """Opens the panel with exactly the headers given, as a browser would (no token added)."""
    sockets: list[PanelSocket] = []

    async def open_(headers: dict[str, str]) -> PanelSocket:
        request = HTTPRequest(f"ws://127.0.0.1:{jp_http_port}{jp_base_url}cloudws/api/panel", headers=headers)
        sock = PanelSocket(await websocket_connect(request))
        sockets.append(sock)
        assert (await sock.recv())["type"] == "hello"
        return sock

    yield open_
    for sock in sockets:
        sock.close()


async def test_a_session_made_in_alices_panel_belongs_to_alice(browser_panel, hub, make_repo):
    sock = await browser_panel({"Cookie": f"{PERSON_COOKIE}=alice; _xsrf={XSRF}"})
    await sock.send({"type": "new_session", "repo": str(make_repo()), "title": "From the panel"})
    await sock.until(lambda s: s.state["error"] or s.state["session"].get("title") == "From the panel")
    assert sock.state["error"] == ""  # a write without the XSRF token would be refused here
    session = sock.state["session"]
    assert hub.store.get_session(session["id"])["owner"] == "alice" != getpass.getuser()

    # Bob's panel lists none of it: his list is his own.
    bobs = await browser_panel({"Cookie": f"{PERSON_COOKIE}=bob; _xsrf={XSRF}"})
    await bobs.send({"type": "list_sessions", "q": ""})
    await bobs.send({"type": "github_repos", "q": "", "seq": 1})  # answered after the list, in order
    await bobs.until(lambda s: any(f["type"] == "msg" and f["content"].get("seq") == 1 for f in s.frames))
    assert bobs.state["sessions"] == [] and bobs.state["error"] == ""


def test_browser_credentials_are_the_handshakes_and_the_query_token_comes_first() -> None:
    headers = {"Cookie": "a=1; _xsrf=2|abc|def|1; b=3", "Authorization": "token from-header", "Host": "x"}
    assert browser_credentials(headers, None) == {
        "Cookie": "a=1; _xsrf=2|abc|def|1; b=3", "X-XSRFToken": "2|abc|def|1", "Authorization": "token from-header",
    }  # fmt: skip
    # jupyter-server reads ?token= before the header: so does the loopback.
    assert browser_credentials(headers, "from-query")["Authorization"] == "token from-query"
    assert browser_credentials({}, None) == {}


@pytest.mark.parametrize(
    ("ip", "https", "url"),
    [("", False, "http://127.0.0.1:8888/base/"), ("0.0.0.0", True, "https://127.0.0.1:8888/base/"),
     ("localhost", False, "http://127.0.0.1:8888/base/"), ("::", False, "http://[::1]:8888/base/"),
     ("10.1.2.3", False, "http://10.1.2.3:8888/base/"), ("fd00::5", False, "http://[fd00::5]:8888/base/")],
)  # fmt: skip
def test_the_loopback_reaches_the_server_where_it_listens(ip: str, https: bool, url: str) -> None:
    assert loopback_url(ip, 8888, "/base/", https=https) == url


class RecordingProxy(socketserver.ThreadingTCPServer):
    """A proxy that forwards nothing: it keeps what each connection sent and answers 502."""

    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[bytes] = []

        class Handler(socketserver.BaseRequestHandler):
            def handle(handler) -> None:
                handler.request.settimeout(5)
                try:
                    self.received.append(handler.request.recv(65536))
                    handler.request.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def proxy_in_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProxy]:
    """Every proxy variable httpx and websockets read points at a RecordingProxy; no NO_PROXY."""
    proxy = RecordingProxy()
    thread = threading.Thread(target=proxy.serve_forever, name="test-proxy", daemon=True)
    thread.start()
    address = f"http://127.0.0.1:{proxy.server_address[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY"):
        monkeypatch.setenv(name, address)
        monkeypatch.setenv(name.lower(), address)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield proxy
    proxy.shutdown()
    proxy.server_close()
    thread.join(5)


async def test_the_loopback_never_goes_through_a_proxy_from_the_environment(browser_panel, make_repo, proxy_in_env):
    """A proxy set for the server's outgoing traffic would get the browser's cookies in clear (an
    HTTP proxy reads every header) and could not reach the server's 127.0.0.1 anyway."""
    sock = await browser_panel({"Cookie": f"{PERSON_COOKIE}=alice; _xsrf={XSRF}"})
    await sock.send({"type": "new_session", "repo": str(make_repo()), "title": "No proxy"})
    await sock.until(lambda s: s.state["error"] or s.state["connection"].get("state") in ("connected", "failed"))
    assert sock.state["error"] == "" and sock.state["session"]["title"] == "No proxy"
    assert sock.state["connection"]["state"] == "connected"  # the session's stream: websockets, not httpx
    assert proxy_in_env.received == []


@pytest.mark.parametrize(
    ("origin", "opens"), [("http://evil.example", False), (None, True)], ids=["another site", "no origin (a script)"]
)
async def test_a_page_of_another_site_cannot_open_a_panel_with_the_users_cookie(
    jp_serverapp, http_server_client, jp_http_port, jp_base_url, hub, origin, opens
):
    """Cross-site WebSocket hijacking: a page elsewhere makes the browser send the login cookie
    with the handshake; jupyter-server's origin check must refuse it before a controller starts."""
    headers = {"Cookie": f"{PERSON_COOKIE}=alice; _xsrf={XSRF}", **({"Origin": origin} if origin else {})}
    request = HTTPRequest(f"ws://127.0.0.1:{jp_http_port}{jp_base_url}cloudws/api/panel", headers=headers)
    if opens:
        sock = PanelSocket(await websocket_connect(request))
        assert (await sock.recv())["type"] == "hello"
        sock.close()
        return
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(request)
    assert refused.value.code == 403
