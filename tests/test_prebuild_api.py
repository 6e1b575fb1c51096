"""Prebuilds over REST and from ``jupyter cloudws prebuild``, against a real jupyter-server whose
backend is the fake one (its sandboxes are staged by the test, in the server's event loop)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer
from tornado.httpclient import AsyncHTTPClient

import cloudws_sandbox
import jupyter_cloudws
from cloudws_sandbox.protocol import SandboxProgressEvent
from jupyter_cloudws.testing.fake_backend import FakeBackend, FakeSandbox

WAIT_S = 20.0
pytestmark = pytest.mark.filterwarnings("error::jupyter_server.utils.JupyterServerAuthWarning")


class SnapshottingFake(FakeBackend):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_snapshot = True  # type: ignore[misc]


class ReadOnlyAuthorizer(Authorizer):
    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource == "cloudws" and action == "read"


@pytest.fixture
def backend_class() -> type[FakeBackend]:
    return SnapshottingFake


@pytest.fixture
def authorizer_class() -> type[Authorizer] | None:
    return None


@pytest.fixture
def jp_server_config(jp_server_config: dict, backend_class: type, authorizer_class: Any) -> dict:
    server = {**jp_server_config["ServerApp"], "allow_unauthenticated_access": False}
    server["jpserver_extensions"] = {**server["jpserver_extensions"], "jupyter_server_terminals": False}
    if authorizer_class is not None:
        server["authorizer_class"] = authorizer_class
    return {**jp_server_config, "ServerApp": server,
            "CloudWorkspaces": {**jp_server_config["CloudWorkspaces"], "backend_class": backend_class,
                                "allow_local_repos": True}}  # fmt: skip


class Raw:
    """Requests with exactly the headers given."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token
        self.right = {"Authorization": f"token {token}"}

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
                   ) -> tuple[int, Any, Any]:  # fmt: skip
        response = await AsyncHTTPClient().fetch(
            self.base + "cloudws/api/" + path, method=method, headers=dict(headers or {}), raise_error=False,
            body=None if method == "GET" else json.dumps(body if body is not None else {}), request_timeout=20,
        )  # fmt: skip
        text = response.body.decode() if response.body else ""
        try:
            return response.code, json.loads(text) if text else None, response.headers
        except ValueError:
            return response.code, text, response.headers


@pytest.fixture
def server_url(jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_base_url: str) -> str:
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}"


@pytest.fixture
def raw(jp_serverapp: Any, server_url: str) -> Raw:
    return Raw(server_url, jp_serverapp.identity_provider.token)


@pytest.fixture
def hub(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["cloudws_hub"]


async def next_sandbox(hub: Any, count: int = 1) -> FakeSandbox:
    return await asyncio.wait_for(hub.backend.wait_for_sandbox(count), WAIT_S)


def finish(sandbox: FakeSandbox, setup: str = "done") -> None:
    sandbox.emit(SandboxProgressEvent("clone", "done", elapsed_ms=300))
    sandbox.emit(SandboxProgressEvent("setup", setup, elapsed_ms=1500, detail="exit code 3" if setup == "failed" else "",
                                      output="make: *** [deps] Error 3" if setup == "failed" else "ok"))  # fmt: skip
    sandbox.ready()


# -- authentication and authorization ------------------------------------------------------

ROUTES = [("GET", "prebuilds"), ("POST", "prebuilds"), ("GET", "prebuilds/{bid}"), ("POST", "warm")]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "token not-the-token"}], ids=["no token", "wrong token"])
async def test_a_request_without_the_right_token_is_refused_and_builds_nothing(raw, hub, make_repo, method, path,
                                                                              headers):  # fmt: skip
    repo = str(make_repo())
    code, build, _ = await raw.call("POST", "prebuilds", {"repo": repo, "branch": "main"}, headers=raw.right)
    assert code == 202, build
    before = hub.store.list_repo_images()

    code, reply, _ = await raw.call(method, path.format(bid=build["id"]), {"repo": repo, "branch": "dev"},
                                    headers=headers)  # fmt: skip
    assert code in (401, 403), (code, reply)
    assert build["id"] not in json.dumps(reply)
    assert hub.store.list_repo_images() == before
    assert len(hub.backend.created) == 1, "only the authorized build started a sandbox"


@pytest.mark.parametrize("authorizer_class", [ReadOnlyAuthorizer])
async def test_a_read_only_user_may_watch_builds_but_not_start_them(raw, hub, make_repo):
    repo = str(make_repo())
    for path in ("prebuilds", "warm"):
        code, reply, _ = await raw.call("POST", path, {"repo": repo}, headers=raw.right)
        assert code == 403, (path, reply)
    code, listing, _ = await raw.call("GET", "prebuilds", headers=raw.right)
    assert (code, listing) == (200, {"prebuilds": []})
    assert hub.backend.created == []


# -- the routes ------------------------------------------------------------------------------


async def test_a_prebuild_is_started_followed_and_listed(raw, hub, make_repo):
    repo = str(make_repo())
    code, build, headers = await raw.call("POST", "prebuilds", {"repo": repo, "branch": "main"}, headers=raw.right)
    assert code == 202, build
    assert (build["repo"], build["branch"], build["status"], build["already_running"]) == (repo, "main", "building", False)
    assert headers["Location"].endswith(f"/cloudws/api/prebuilds/{build['id']}")
    code, again, _ = await raw.call("POST", "prebuilds", {"repo": repo, "branch": "main"}, headers=raw.right)
    assert (code, again["id"], again["already_running"]) == (202, build["id"], True)

    sandbox = await next_sandbox(hub)
    assert sandbox.spec.prebuild is True
    finish(sandbox)
    done = await asyncio.wait_for(hub.prebuilds.wait(build["id"]), WAIT_S)
    code, shown, _ = await raw.call("GET", f"prebuilds/{build['id']}", headers=raw.right)
    assert code == 200 and shown == done and shown["status"] == "ready" and shown["image_id"]
    assert [s["step"] for s in shown["steps"]] == ["start", "start", "clone", "setup", "image", "image"]
    code, listing, _ = await raw.call("GET", "prebuilds", headers=raw.right)
    assert [b["id"] for b in listing["prebuilds"]] == [build["id"]]
    assert len(hub.backend.created) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"repo": "--upload-pack=touch /tmp/x"}, 400, "bad_repo"),
        ({"repo": "/etc"}, 400, "repo_outside_roots"),
        ({"repo": "{repo}", "branch": "-f"}, 400, "bad_branch"),
        ({"repo": "{repo}", "branch": "x/../../y"}, 400, "bad_branch"),
        ({"repo": "{repo}", "image": "mine"}, 400, "bad_request"),
        ({}, 400, "bad_request"),
        ("[1]", 400, "malformed"),
    ],
)
async def test_bad_requests_are_refused_with_a_clear_error(raw, hub, make_repo, body, status, code):
    body = json.loads(json.dumps(body).replace("{repo}", str(make_repo())))
    reply_code, reply, _ = await raw.call("POST", "prebuilds", body if body != "[1]" else [1], headers=raw.right)
    assert (reply_code, reply["code"]) == (status, code), reply
    assert reply["message"]
    assert hub.store.list_repo_images() == [] and hub.backend.created == []


async def test_an_unknown_build_is_a_404(raw):
    code, reply, _ = await raw.call("GET", "prebuilds/nope", headers=raw.right)
    assert (code, reply["code"]) == (404, "unknown_prebuild")


@pytest.mark.parametrize("backend_class", [FakeBackend])
async def test_a_backend_without_snapshots_refuses_prebuilds_and_warm_ups_do_nothing(raw, hub, make_repo):
    repo = str(make_repo())
    code, reply, _ = await raw.call("POST", "prebuilds", {"repo": repo}, headers=raw.right)
    assert (code, reply["code"]) == (501, "prebuild_unsupported")
    assert "cannot snapshot sandboxes" in reply["message"]
    code, reply, _ = await raw.call("POST", "warm", {"repo": repo}, headers=raw.right)
    assert (code, reply) == (200, {"started": False, "status": "unsupported", "id": None})
    assert hub.backend.created == []


async def test_warming_a_repository_starts_one_build_and_is_rate_limited(raw, hub, make_repo):
    repo = str(make_repo())
    code, reply, _ = await raw.call("POST", "warm", {"repo": repo, "branch": ""}, headers=raw.right)
    assert code == 200 and reply["started"] is True, reply
    code, again, _ = await raw.call("POST", "warm", {"repo": repo, "branch": ""}, headers=raw.right)
    assert (code, again["code"]) == (429, "rate_limited")
    sandbox = await next_sandbox(hub)
    assert (sandbox.spec.repo, sandbox.spec.base_branch, sandbox.spec.prebuild) == (repo, "", True)


# -- the command line ------------------------------------------------------------------------


async def cli(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """``jupyter cloudws ARGS`` from this checkout (the installed script may be another's)."""
    path = os.pathsep.join([str(Path(jupyter_cloudws.__file__).parents[1]), str(Path(cloudws_sandbox.__file__).parents[1])])
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jupyter_cloudws.command", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": path, "CLOUDWS_URL": "", "CLOUDWS_TOKEN": "", **(env or {})},
    )  # fmt: skip


async def outcome(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(proc.communicate(), WAIT_S)
    return proc.returncode, out.decode(), err.decode()  # type: ignore[return-value]


async def test_the_cli_builds_an_image_and_prints_its_steps(raw, hub, make_repo, server_url, tmp_path):
    repo = make_repo()
    os.chdir(tmp_path)  # a relative path is sent as an absolute one
    proc = await cli("prebuild", os.path.relpath(repo, tmp_path), "--branch", "main", "--server", server_url,
                     "--token", raw.token, "--poll-interval-s", "0.05")  # fmt: skip
    finish(await next_sandbox(hub))
    code, out, err = await outcome(proc)

    assert code == 0, (out, err)
    (build,) = hub.store.list_repo_images()
    assert build["repo"] == str(repo) and build["status"] == "ready"
    assert f"building {repo} at main on {server_url} (prebuild {build['id']})" in out
    assert "  clone   done 0.3 s" in out and "  setup   done 1.5 s" in out
    assert f"ready: image {build['image_id']}" in out


async def test_the_cli_exits_non_zero_with_the_setup_scripts_tail_when_the_build_fails(raw, hub, make_repo, server_url):
    proc = await cli("prebuild", str(make_repo()), "--server", server_url, "--token", raw.token,
                     "--poll-interval-s", "0.05")  # fmt: skip
    finish(await next_sandbox(hub), setup="failed")
    code, out, err = await outcome(proc)
    assert code == 1, (out, err)
    assert "  setup   failed 1.5 s: exit code 3\n    | make: *** [deps] Error 3" in out
    assert "failed: the setup script failed (exit code 3)" in err


async def test_the_cli_reports_a_refusal_and_a_missing_server(raw, hub, server_url):
    code, out, err = await outcome(await cli("prebuild", "--server", server_url, "--token", raw.token, "--",
                                             "--upload-pack=x"))
    assert code == 2 and "the server refused the prebuild" in err and "bad_repo" in err, (out, err)
    code, out, err = await outcome(await cli("prebuild", "https://example.test/r.git", "--server", server_url,
                                             "--token", "wrong"))  # fmt: skip
    assert code == 2 and "the token was rejected" in err, (out, err)
    assert hub.backend.created == []


async def test_the_cli_finds_the_server_as_the_client_does(raw, hub, make_repo, server_url):
    repo = str(make_repo())
    proc = await cli("prebuild", repo, "--no-wait", env={"CLOUDWS_URL": server_url, "CLOUDWS_TOKEN": raw.token})
    code, out, err = await outcome(proc)
    assert code == 0, (out, err)
    (build,) = hub.store.list_repo_images()
    assert f"building {repo} at the default branch on {server_url} (prebuild {build['id']})" in out
    assert (await next_sandbox(hub)).spec.base_branch == ""


def test_the_console_script_is_declared() -> None:
    text = (Path(jupyter_cloudws.__file__).parents[1] / "pyproject.toml").read_text()
    assert 'jupyter-cloudws = "jupyter_cloudws.command:main"' in text


# -- keep fresh ------------------------------------------------------------------------------


class TestKeepFresh:
    @pytest.fixture
    def cloudws_config(self, make_repo: Any) -> dict[str, Any]:
        return {"prebuild_repos": ["ext::sh -c evil", f"{make_repo()}@main"], "prebuild_interval_s": 0}

    async def test_the_configured_repositories_are_built_at_start_and_a_bad_entry_is_only_logged(
        self, raw, hub, jp_serverapp, caplog
    ):
        # pytest-jupyter does not start extensions (the server's _post_start does): as a server would.
        await jp_serverapp.extension_manager.start_all_extensions()
        sandbox = await next_sandbox(hub)
        assert (sandbox.spec.base_branch, sandbox.spec.prebuild) == ("main", True)
        code, status, _ = await raw.call("GET", "status", headers=raw.right)
        assert code == 200, "the server answers while it builds"
        finish(sandbox)
        (build,) = hub.store.list_repo_images()
        done = await asyncio.wait_for(hub.prebuilds.wait(build["id"]), WAIT_S)
        assert done["status"] == "ready" and done["requested_by"] is None
        assert "'ext::sh -c evil' refused" in caplog.text


def test_the_cli_keeps_printing_steps_once_the_server_keeps_only_the_last_ones() -> None:
    """The server keeps a build's last 100 steps: a chatty setup script must not freeze the CLI."""
    import io

    import httpx

    from jupyter_cloudws.command import _follow

    def steps(first: int, last: int) -> list[dict]:
        return [{"n": n, "step": "setup", "state": "running", "elapsed_ms": n, "detail": "", "output": f"line {n}"}
                for n in range(first, last + 1)]  # fmt: skip

    polls = iter([
        {"status": "building", "steps": steps(1, 100)},
        {"status": "ready", "steps": steps(51, 150), "image_id": "im-1", "duration_s": 1.0, "detail": "ok"},
    ])  # fmt: skip
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=next(polls)))
    out, err = io.StringIO(), io.StringIO()
    with httpx.Client(transport=transport, base_url="http://127.0.0.1:1/cloudws/api/") as http:
        assert _follow(http, "b1", 0.0, out, err) == 0
    printed = out.getvalue()
    assert "line 100" in printed and "line 150" in printed
    assert printed.count("line 75") == 1, "a step shown once is not shown again"
