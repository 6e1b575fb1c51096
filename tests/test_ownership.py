"""Sessions belong to people.

Alice and Bob share one Jupyter server; each has a token of their own (a small identity provider
below). Carol is an admin because the server's authorizer says so. The story: Alice and Bob each
see, read and drive only their own sessions; to Bob, Alice's session looks exactly like a session
that never existed, over REST and over the WebSocket, and nothing he tries changes it; Carol sees
and acts on everyone's; and a server with only its shared token behaves as a single-user server
always did. Every refused request is followed by a look at the store to show nothing changed.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User
from tornado.httpclient import HTTPClientError

from cloudws_sandbox.protocol import SandboxStatusEvent
from hub_api import Api, PanelSocket, SessionSocket
from jupyter_cloudws.client import Client
from jupyter_cloudws.testing.fake_anthropic import text, tool_use
from support import completed, git

TOKENS = {"alice-token": "alice", "bob-token": "bob", "carol-token": "carol"}


class TokensForPeople(IdentityProvider):
    """Each person's token names them; the server's own shared token works as it always did."""

    def get_user(self, handler: Any) -> Any:
        username = TOKENS.get(self.get_token(handler) or "")
        if username is None:
            return super().get_user(handler)
        handler._token_authenticated = True  # as for the shared token: no XSRF cookie needed
        return User(username=username, name=username.title())


class AdminsByName(Authorizer):
    """Everyone may read and write; only the people in ``admins`` are cloudws admins."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.admins = {"carol"}

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if action == "admin":
            return resource == "cloudws" and user.username in self.admins
        return action in ("read", "write", "execute")


class YesToEverything(Authorizer):
    """A blanket authorizer, like jupyter-server's default or JupyterHub's single-user one."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return True


@pytest.fixture
def authorizer_class() -> type[Authorizer] | None:
    return AdminsByName


@pytest.fixture
def jp_server_config(jp_server_config: dict, authorizer_class: type[Authorizer] | None) -> dict:
    server = {**jp_server_config["ServerApp"], "identity_provider_class": TokensForPeople}
    if authorizer_class is not None:
        server["authorizer_class"] = authorizer_class
    return {**jp_server_config, "ServerApp": server}


@pytest.fixture
def hub(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["cloudws_hub"]


@dataclass
class Person:
    name: str
    api: Api
    headers: dict[str, str]
    open_socket: Callable[..., Any]

    async def socket(self, session_id: str) -> SessionSocket:
        return await self.open_socket(session_id, headers=dict(self.headers))


def person(name: str, token: str, jp_fetch: Callable[..., Any], open_socket: Callable[..., Any]) -> Person:
    headers = {"Authorization": f"token {token}"}

    def fetch(*parts: str, **kwargs: Any) -> Any:
        return jp_fetch(*parts, headers=dict(headers), **kwargs)

    return Person(name, Api(fetch), headers, open_socket)


@pytest.fixture
def alice(jp_serverapp, jp_fetch, open_socket) -> Person:
    return person("alice", "alice-token", jp_fetch, open_socket)


@pytest.fixture
def bob(jp_serverapp, jp_fetch, open_socket) -> Person:
    return person("bob", "bob-token", jp_fetch, open_socket)


@pytest.fixture
def carol(jp_serverapp, jp_fetch, open_socket) -> Person:
    return person("carol", "carol-token", jp_fetch, open_socket)


@pytest.fixture
def shared_token(jp_serverapp, jp_fetch, open_socket) -> Person:
    """Whoever holds the server's shared token: the server's own user, as on a laptop."""
    return person(getpass.getuser(), jp_serverapp.identity_provider.token, jp_fetch, open_socket)


def state(hub: Any, session_id: str) -> dict[str, Any]:
    """Everything a request could change about a session, read straight from the store."""
    return {
        "session": hub.store.get_session(session_id),
        "events": hub.store.events_after(session_id, 0, 10_000),
        "prompts": hub.store.active_prompts(session_id),
        "runner": session_id in hub._runners,  # a prompt, Stop or typing would have woken one
    }


def no_sandbox_started(hub: Any) -> bool:
    sandboxes = Path(hub.backend.root_dir)
    return not sandboxes.exists() or not any(sandboxes.iterdir())


def without(text_: str, *ids: str) -> str:
    for sid in ids:
        text_ = text_.replace(sid, "<id>")
    return text_


# Every route that names a session, as Bob would try it on Alice's session.
SESSION_ROUTES = [
    ("GET", "sessions/{sid}", None),
    ("PATCH", "sessions/{sid}", {"title": "Bob was here"}),
    ("PATCH", "sessions/{sid}", {"archived": True}),
    ("POST", "sessions/{sid}/prompts", {"text": "Please delete everything", "client_request_id": "bob-1"}),
    ("POST", "sessions/{sid}/stop", None),
    ("GET", "sessions/{sid}/events", None),
    ("GET", "sessions/{sid}/changes", None),
    ("GET", "sessions/{sid}/artifacts", None),
    ("GET", "sessions/{sid}/pull-request/draft", None),
]
ROUTE_IDS = ["get", "rename", "archive", "prompt", "stop", "events", "changes", "artifacts", "pr-draft"]


# -- listing -------------------------------------------------------------------------------


async def test_alice_and_bob_each_list_only_their_own_sessions(alice, bob, make_repo):
    mine = await alice.api.new_session(make_repo("alpha"), title="Alice's parser")
    archived = await alice.api.new_session(make_repo("gamma"), title="Alice's old work")
    assert (await alice.api.patch(f"sessions/{archived['id']}", {"archived": True}))[0] == 200
    theirs = await bob.api.new_session(make_repo("beta"), title="Bob's parser")
    assert (mine["owner"], theirs["owner"]) == ("alice", "bob")

    async def listed(who: Person, **params: Any) -> list[str]:
        code, body = await who.api.get("sessions", **params)
        assert code == 200, body
        return [s["id"] for s in body["sessions"]]

    assert await listed(alice) == [mine["id"]]
    assert await listed(alice, archived="all") == [archived["id"], mine["id"]]
    assert await listed(alice, archived="true") == [archived["id"]]
    assert await listed(bob) == [theirs["id"]]
    assert await listed(bob, archived="all") == [theirs["id"]]
    # A search that matches everyone's titles still finds only one's own.
    assert await listed(bob, q="parser") == [theirs["id"]]
    assert await listed(bob, q="Alice's") == []


async def test_recent_repositories_are_per_person(alice, bob, make_repo, jp_base_url, jp_http_port):
    alpha, beta = make_repo("alpha"), make_repo("beta")
    await alice.api.new_session(alpha)
    await bob.api.new_session(beta)

    def recent(token: str) -> list[str]:
        client = Client(f"http://127.0.0.1:{jp_http_port}{jp_base_url}", token)
        try:
            return client.recent_repos()
        finally:
            client.close()

    # The client is synchronous: run it off the loop that serves it.
    assert await asyncio.to_thread(recent, "alice-token") == [str(alpha)]
    assert await asyncio.to_thread(recent, "bob-token") == [str(beta)]


async def test_a_new_session_belongs_to_whoever_creates_it_whatever_the_body_says(alice, bob, make_repo):
    session = await bob.api.new_session(make_repo(), owner="alice", title="Planted")
    assert session["owner"] == "bob"
    assert (await alice.api.get("sessions", archived="all")) == (200, {"sessions": []})


# -- someone else's session ----------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), SESSION_ROUTES, ids=ROUTE_IDS)
async def test_someone_elses_session_answers_exactly_like_one_that_never_existed(
    alice, bob, hub, make_repo, method, path, body
):
    session = await alice.api.new_session(make_repo(), title="Alice's plans")
    before = state(hub, session["id"])
    never = uuid.uuid4().hex

    code, reply = await bob.api.call(method, path.format(sid=session["id"]), body)
    unknown_code, unknown_reply = await bob.api.call(method, path.format(sid=never), body)

    assert (code, reply["code"]) == (404, "unknown_session"), reply
    assert (code, without(json.dumps(reply), session["id"])) == (
        unknown_code, without(json.dumps(unknown_reply), never)
    ), "the refusal tells Bob nothing a made-up id would not"
    assert "Alice's plans" not in json.dumps(reply)
    assert state(hub, session["id"]) == before, "nothing changed"
    assert no_sandbox_started(hub)
    # The same request is Alice's to make: the refusal was about whose session it is.
    code, reply = await alice.api.call(method, path.format(sid=session["id"]), body)
    assert code in (200, 202), reply


async def test_someone_elses_session_cannot_be_opened_over_the_websocket(alice, bob, hub, make_repo):
    session = await alice.api.new_session(make_repo())
    before = state(hub, session["id"])
    never = uuid.uuid4().hex

    refusals = []
    for sid in (session["id"], never):
        with pytest.raises(HTTPClientError) as refused:
            await bob.socket(sid)
        refusals.append((refused.value.code, without(refused.value.response.body.decode(), sid)))
    assert refusals[0][0] == 404
    assert refusals[0] == refusals[1], "the same refusal as for an id that never existed"
    assert state(hub, session["id"]) == before

    sock = await alice.socket(session["id"])  # and Alice opens it
    await sock.send({"type": "subscribe"})
    assert (await sock.recv())["session"]["id"] == session["id"]


async def test_someone_elses_session_cannot_be_opened_in_the_panel(alice, bob, hub, make_repo, jp_ws_fetch):
    """The panel asks the API as its browser's user: to Bob, Alice's session is one that never
    existed there too, and none of it reaches his panel."""
    session = await alice.api.new_session(make_repo(), title="Alice's secret plan")
    his = await bob.api.new_session(make_repo("beta"), title="Bob's")
    before = state(hub, session["id"])
    panel = PanelSocket(await jp_ws_fetch("cloudws", "api", "panel", headers=dict(bob.headers)))
    assert (await panel.recv())["type"] == "hello"

    errors = []
    for sid in (session["id"], uuid.uuid4().hex):
        start = len(panel.frames)
        await panel.send({"type": "open_session", "id": sid})
        frame = await panel.until(lambda p, start=start: next(
            (f for f in p.frames[start:] if f["type"] == "state" and f["changes"].get("error")), None))
        errors.append(without(frame["changes"]["error"], sid))
    await panel.send({"type": "list_sessions", "q": ""})
    await panel.send({"type": "github_repos", "q": "", "seq": 1})  # answered after the list, in order
    await panel.until(lambda p: any(f["type"] == "msg" and f["content"].get("seq") == 1 for f in p.frames))
    panel.close()

    assert errors[0] == errors[1], "the same refusal as for an id that never existed"
    assert panel.state["session"] == {} and panel.items == {}
    assert [s["id"] for s in panel.state["sessions"]] == [his["id"]], "Bob's panel lists his own, as Bob"
    seen = json.dumps(panel.frames)
    assert "secret plan" not in seen and session["branch"] not in seen and session["repo"] not in seen
    assert state(hub, session["id"]) == before


# -- the admin -----------------------------------------------------------------------------


async def test_an_admin_named_by_the_authorizer_sees_and_acts_on_every_session(alice, bob, carol, hub, make_repo):
    hers = await alice.api.new_session(make_repo("alpha"), title="Alice's")
    his = await bob.api.new_session(make_repo("beta"), title="Bob's")

    code, listing = await carol.api.get("sessions")
    assert code == 200 and [s["id"] for s in listing["sessions"]] == [his["id"], hers["id"]]
    assert (await carol.api.get(f"sessions/{hers['id']}"))[1]["title"] == "Alice's"
    assert (await carol.api.get(f"sessions/{hers['id']}/events")) == (200, {"events": [], "has_more": False})
    code, renamed = await carol.api.patch(f"sessions/{his['id']}", {"title": "Bob's, tidied"})
    assert (code, renamed["title"], renamed["owner"]) == (200, "Bob's, tidied", "bob"), "still Bob's"
    assert (await carol.api.post(f"sessions/{his['id']}/stop"))[0] == 202
    code, archived = await carol.api.patch(f"sessions/{his['id']}", {"archived": True})
    assert (code, archived["archived"]) == (200, True)
    assert (await bob.api.get(f"sessions/{his['id']}"))[1]["title"] == "Bob's, tidied", "Bob sees what Carol did"

    sock = await carol.socket(hers["id"])
    await sock.send({"type": "subscribe"})
    assert (await sock.recv())["session"]["id"] == hers["id"]
    # Being an admin does not make Carol the owner of what she creates.
    assert (await carol.api.new_session(make_repo("delta")))["owner"] == "carol"
    assert [s["owner"] for s in (await alice.api.get("sessions"))[1]["sessions"]] == ["alice"]


async def test_when_the_authorizer_takes_admin_away_an_open_socket_answers_with_error_frames(
    jp_serverapp, alice, carol, hub, make_repo
):
    session = await alice.api.new_session(make_repo(), title="Alice's")
    sock = await carol.socket(session["id"])
    await sock.send({"type": "subscribe"})
    assert (await sock.recv())["type"] == "subscribed"

    jp_serverapp.authorizer.admins.discard("carol")
    # Her subscription holds the session's runner; whether the hub keeps it after is its business.
    before = {k: v for k, v in state(hub, session["id"]).items() if k != "runner"}
    for frame in ({"type": "subscribe"}, {"type": "prompt", "text": "Please delete everything"},
                  {"type": "stop"}, {"type": "typing"}):  # fmt: skip
        await sock.send(frame)
        reply = await sock.recv()
        assert (reply["type"], reply["code"]) == ("error", "unknown_session"), (frame, reply)
    assert {k: v for k, v in state(hub, session["id"]).items() if k != "runner"} == before, "nothing changed"
    assert no_sandbox_started(hub)

    # Her subscription went with her rights: nothing new of Alice's reaches her.
    hub.runner(session["id"]).append(SandboxStatusEvent("stopped", "a note for Alice"))
    await alice.api.patch(f"sessions/{session['id']}", {"title": "Alice's, renamed"})  # a session frame
    await sock.send({"type": "ping"})
    assert (await sock.recv()) == {"type": "pong"}, "nothing of Alice's came before the pong"


@pytest.mark.parametrize("authorizer_class", [None, YesToEverything], ids=["jupyter-server's default", "yes to all"])
async def test_an_authorizer_that_says_yes_to_everything_makes_nobody_admin(
    alice, carol, make_repo, caplog, authorizer_class
):
    hers = await alice.api.new_session(make_repo())
    assert (await carol.api.get("sessions", archived="all")) == (200, {"sessions": []})
    code, reply = await carol.api.get(f"sessions/{hers['id']}")
    assert (code, reply["code"]) == (404, "unknown_session")
    # A deployment that set such an authorizer hears why nobody is an admin, once; a laptop on
    # jupyter-server's default hears nothing.
    warnings = [r for r in caplog.records if "nobody is a cloudws admin" in r.getMessage()]
    assert len(warnings) == (0 if authorizer_class is None else 1)


# -- one person with the shared token -------------------------------------------------------


async def test_the_shared_token_works_as_on_a_single_user_server(shared_token, alice, hub, make_repo):
    session = await shared_token.api.new_session(make_repo(), title="Mine")
    # jupyter-server makes every token request a new anonymous user; all of them are the
    # server's own user, so the session stays theirs from request to request.
    assert session["owner"] == getpass.getuser()
    assert (await shared_token.api.get("sessions")) == (200, {"sessions": [session]})
    assert (await shared_token.api.get(f"sessions/{session['id']}")) == (200, session)
    code, renamed = await shared_token.api.patch(f"sessions/{session['id']}", {"title": "Still mine"})
    assert (code, renamed["title"]) == (200, "Still mine")
    sock = await shared_token.socket(session["id"])
    await sock.send({"type": "subscribe"})
    assert (await sock.recv())["session"]["title"] == "Still mine"
    # Alice, with a token of her own, is someone else.
    assert (await alice.api.get("sessions", archived="all")) == (200, {"sessions": []})


# -- prompts, with a real sandbox ------------------------------------------------------------


async def test_alice_prompts_her_session_and_bob_cannot(alice, bob, carol, hub, make_repo, fake_anthropic):
    fake_anthropic.on("write the plan", tool_use("Bash", {"command": "echo plan > plan.txt"}), text("Done."))
    fake_anthropic.on("add a footnote", tool_use("Bash", {"command": "echo note >> plan.txt"}), text("Noted."))
    repo = make_repo()
    session = await alice.api.new_session(repo)
    sock = await alice.socket(session["id"])
    await sock.send({"type": "subscribe"})
    await sock.recv()

    await sock.send({"type": "prompt", "text": "Please write the plan"})
    accepted = await sock.until(lambda f: f["type"] == "prompt_accepted")
    await sock.until(completed(accepted["message_id"]))
    before = state(hub, session["id"])

    code, reply = await bob.api.post(f"sessions/{session['id']}/prompts", {"text": "Please write the plan again"})
    assert (code, reply["code"]) == (404, "unknown_session")
    assert state(hub, session["id"]) == before

    # An admin's prompt runs, signed as the admin.
    await carol.api.prompt(session["id"], "Please add a footnote")
    await sock.until(lambda f: f["type"] == "event" and f["event"]["type"] == "execution_complete"
                     and f["event"]["message_id"] != accepted["message_id"])  # fmt: skip
    prompts = [(e["text"], e["author"]["username"]) for e in sock.events() if e["type"] == "user_message"]
    assert prompts == [("Please write the plan", "alice"), ("Please add a footnote", "carol")]
    log = git("--git-dir", str(repo), "log", "--format=%an <%ae>", session["branch"]).splitlines()
    assert log[:2] == ["Carol <carol@users.noreply.jupyter>", "Alice <alice@users.noreply.jupyter>"]
