"""A kernel finds its Jupyter server: explicit arguments, CLOUDWS_* variables, JupyterHub's
variables, then the servers recorded in Jupyter's runtime dir, the one holding the cwd first."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_helpers import start_server

from jupyter_cloudws.client import Client, ServerNotFound, connect, find_server
from jupyter_cloudws.client.discovery import normalize_url
from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic
from jupyter_cloudws.testing.server import ServerProcess, free_port

PLACES = ("CLOUDWS_URL", "CLOUDWS_TOKEN", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with FakeAnthropic() as fake:  # no prompt runs here; the server only needs a config
        proc = start_server(tmp_path_factory.mktemp("discovery-server"), fake)
        yield proc
        proc.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No inherited hints, and an empty runtime dir of our own."""
    for name in PLACES:
        monkeypatch.delenv(name, raising=False)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    return runtime


def record_server(runtime: Path, name: str, *, url: str, token: str, root_dir: Path, pid: int) -> None:
    """A server info file as jupyter-server writes it (``list_running_servers`` reads these)."""
    info = {"url": url, "token": token, "root_dir": str(root_dir), "pid": pid, "sock": "", "base_url": "/"}
    (runtime / f"jpserver-{name}.json").write_text(json.dumps(info))


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/"  # bound once, then closed: nothing listens


def test_explicit_arguments_win(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDWS_URL", dead_url())
    info = find_server(server.url.rstrip("/"), server.token)
    assert (info.url, info.token, info.how) == (server.url, server.token, "the url argument")
    assert server.token not in repr(info)


def test_an_explicit_url_without_token_takes_the_token_jupyter_recorded_for_it(
    server: ServerProcess, clean_env: Path
) -> None:
    record_server(clean_env, "it", url=server.url, token=server.token, root_dir=Path("/"), pid=server.proc.pid)
    assert find_server(server.url).token == server.token


def test_explicit_url_that_fails_is_not_swapped_for_another_server(server: ServerProcess, clean_env: Path) -> None:
    record_server(clean_env, "good", url=server.url, token=server.token, root_dir=Path("/"), pid=os.getpid())
    with pytest.raises(ServerNotFound) as caught:
        find_server(server.url, "wrong-token")
    assert "the token was rejected" in str(caught.value)
    assert "running server" not in str(caught.value)


def test_cloudws_variables(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDWS_URL", server.url)
    monkeypatch.setenv("CLOUDWS_TOKEN", server.token)
    with connect() as client:
        assert client.how == "CLOUDWS_URL"
        assert client.status()["backend"] == "local"
        assert repr(client) == f"<cloudws.Client {server.url} (CLOUDWS_URL)>"


def test_jupyterhub_variables_with_a_bind_all_address(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # A single-user server's kernels inherit the URL it was told to bind, e.g. http://0.0.0.0:PORT/user/x/.
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", f"http://0.0.0.0:{server.port}")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", server.token)
    info = find_server()
    assert (info.url, info.how) == (server.url, "JUPYTERHUB_SERVICE_URL")


def test_runtime_dir_prefers_the_server_whose_root_holds_the_cwd(
    server: ServerProcess, clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    notebooks = tmp_path / "home" / "projects"
    (notebooks / "analysis").mkdir(parents=True)
    monkeypatch.chdir(notebooks / "analysis")
    # Both records point at the real server (with good tokens), so only the order can tell them
    # apart: the deeper root_dir must be tried first. A third, unrelated server is dead.
    record_server(clean_env, "outer", url=server.url, token=server.token, root_dir=tmp_path / "home",
                  pid=os.getpid())  # fmt: skip
    record_server(clean_env, "inner", url=server.url, token=server.token, root_dir=notebooks, pid=server.proc.pid)
    record_server(clean_env, "elsewhere", url=dead_url(), token="x", root_dir=Path("/srv/other"), pid=os.getpid())
    info = find_server()
    assert info.how == f"running server pid {server.proc.pid} in {clean_env}"
    assert (info.url, info.token) == (server.url, server.token)


def test_runtime_dir_skips_servers_that_do_not_answer(
    server: ServerProcess, clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    record_server(clean_env, "stale", url=dead_url(), token="t", root_dir=tmp_path, pid=os.getpid())
    record_server(clean_env, "real", url=server.url, token=server.token, root_dir=Path("/nowhere"), pid=server.proc.pid)
    with connect() as client:
        assert client.url == server.url
        assert client.sessions() == []


def test_nothing_answers_lists_every_place_tried_and_the_fix(
    server: ServerProcess, clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    stale = dead_url()
    record_server(clean_env, "stale", url=stale, token="t", root_dir=tmp_path, pid=os.getpid())
    record_server(clean_env, "badtoken", url=server.url, token="not-the-token", root_dir=tmp_path, pid=os.getpid())
    with pytest.raises(ServerNotFound) as caught:
        connect()
    message = str(caught.value)
    assert "CLOUDWS_URL: not set" in message
    assert "JupyterHub (JUPYTERHUB_SERVICE_URL): not set" in message
    assert f"({stale}): not reachable" in message
    assert f"({server.url}): HTTP 403: the token was rejected" in message
    assert "set CLOUDWS_URL and CLOUDWS_TOKEN" in message and "connect(url=" in message
    assert len(caught.value.tried) == 4
    assert "not-the-token" not in message


def test_an_empty_runtime_dir_is_reported(clean_env: Path) -> None:
    with pytest.raises(ServerNotFound, match=f"running servers in {clean_env}: none recorded"):
        find_server()


def test_a_client_can_be_made_directly(server: ServerProcess) -> None:
    with Client(server.url, server.token) as client:
        assert client.status()["version"]


def test_urls_are_normalized() -> None:
    assert normalize_url("http://0.0.0.0:8888/user/ada") == "http://127.0.0.1:8888/user/ada/"
    assert normalize_url("http://:8888/user/ada/") == "http://127.0.0.1:8888/user/ada/"
    assert normalize_url("https://hub.example.test/user/ada/?x=1") == "https://hub.example.test/user/ada/"
    with pytest.raises(ValueError, match="not an http"):
        normalize_url("127.0.0.1:8888")
