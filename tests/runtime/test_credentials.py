"""The daemon's git credential helper: the token reaches git for the daemon's own clone, fetch
and push, against a real token-protected git host, and nobody else gets it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloudws_sandbox import gitops
from cloudws_sandbox.credential_helper import NONCE_ENV, SOCKET_ENV, helper_main
from cloudws_sandbox.credentials import Credential, CredentialBroker, helper_command
from cloudws_sandbox.protocol import ProtocolError, bridge_credentials, parse_bridge_op
from jupyter_cloudws.testing.git_http import GitHttpServer

TOKEN = "ghp_cloudwsTestToken0123456789abcdef"
AUTHOR = gitops.Author("Claude Code", "claude@example.invalid")
RUNTIME_ROOT = str(Path(gitops.__file__).resolve().parent.parent)


@pytest.fixture
def host(tmp_path: Path) -> GitHttpServer:
    with GitHttpServer(tmp_path / "host", token=TOKEN) as server:
        yield server


def credential_for(host: GitHttpServer, password: str = TOKEN) -> Credential:
    return Credential("http", f"127.0.0.1:{host.port}", "x-access-token", password)


@contextlib.asynccontextmanager
async def started(tmp_path: Path, **kwargs: Any) -> AsyncIterator[CredentialBroker]:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    broker = CredentialBroker(state / "git-credential.sock", **kwargs)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


def git_config_has_no_token(work: Path) -> None:
    config = (work / ".git" / "config").read_text()
    assert TOKEN not in config and "x-access-token" not in config, config


async def test_clone_fetch_and_push_get_the_token_through_the_helper(host, tmp_path):
    async with started(tmp_path) as broker:
        url = host.make_remote("private")
        broker.set(credential_for(host))
        work = tmp_path / "work"
        await gitops.clone(url, str(work), broker)
        assert (work / "README.md").read_text() == "# private\n"
        upstream = gitops.Upstream(url, str(tmp_path / "state" / "net.git"))
        await gitops.fetch(str(work), upstream, broker)
        (work / "new.txt").write_text("hello\n")
        assert await gitops.commit_all(str(work), "add new.txt", AUTHOR)
        await gitops.push(str(work), "cloudws/session", upstream, broker)
        pushed = subprocess.run(["git", "rev-parse", "refs/heads/cloudws/session"], cwd=host.path_for("private"),
                                capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        assert pushed == await gitops.head_sha(str(work))
        git_config_has_no_token(work)
        assert oct((tmp_path / "state" / "git-credential.sock").stat().st_mode & 0o777) == "0o600"


async def test_without_a_credential_the_error_says_so_not_could_not_read_username(host, tmp_path):
    async with started(tmp_path) as broker:
        url = host.make_remote("private")
        with pytest.raises(gitops.GitError) as caught:
            await gitops.clone(url, str(tmp_path / "work"), broker)
        message = str(caught.value)
        assert "could not read Username" not in message
        assert f"http://127.0.0.1:{host.port} asked for a login" in message
        assert "the hub has sent no git credential" in message and "c.GitHub.token" in message


async def test_a_wrong_token_is_reported_as_refused_by_the_host(host, tmp_path):
    async with started(tmp_path) as broker:
        url = host.make_remote("private")
        wrong = "ghp_wrongWrongWrong0123456789"
        broker.set(credential_for(host, wrong))
        with pytest.raises(gitops.GitError) as caught:
            await gitops.clone(url, str(tmp_path / "work"), broker)
        message = str(caught.value)
        assert f"the git host refused the token for http://127.0.0.1:{host.port} (HTTP 401)" in message
        assert wrong not in message


async def test_a_credential_for_another_host_is_not_given(host, tmp_path):
    async with started(tmp_path) as broker:
        url = host.make_remote("private")
        broker.set(Credential("http", "github.example.com", "x-access-token", TOKEN))
        with pytest.raises(gitops.GitError) as caught:
            await gitops.clone(url, str(tmp_path / "work"), broker)
        assert "the hub's git credential is for http://github.example.com, not for this host" in str(caught.value)


async def test_a_required_credential_that_never_comes_fails_the_clone_clearly(host, tmp_path):
    url = host.make_remote("private")
    async with started(tmp_path, required=True, timeout_s=0.2) as broker:
        with pytest.raises(gitops.GitError) as caught:
            await gitops.clone(url, str(tmp_path / "work"), broker)
    assert "the hub sent no git credential within 0.2 s" in str(caught.value)
    assert not host.requests, "git must not even ask the host without the credential"


async def test_a_required_credential_arriving_during_the_wait_lets_the_clone_go_on(host, tmp_path):
    url = host.make_remote("private")
    async with started(tmp_path, required=True, timeout_s=30) as broker:
        clone = asyncio.ensure_future(gitops.clone(url, str(tmp_path / "work"), broker))
        await asyncio.sleep(0)  # the clone is waiting for the credential, not running git
        assert not clone.done() and not host.requests
        broker.set(credential_for(host))
        await clone
    assert (tmp_path / "work" / "README.md").exists()


async def test_a_git_call_gets_the_push_config_and_only_the_runtimes_helper(tmp_path):
    # The repository (which the agent can write) names a helper of its own: git must not call
    # it (it would be handed the token to ``store``); PUSH_CONFIG comes through beside ours.
    async with started(tmp_path) as broker:
        work = tmp_path / "work"
        subprocess.run(["git", "init", "--quiet", str(work)], check=True)
        subprocess.run(["git", "config", "credential.helper", "!steal"], cwd=work, check=True)
        subprocess.run(["git", "config", "core.askPass", "/tmp/steal"], cwd=work, check=True)
        listed = await gitops.git("config", "--list", cwd=str(work), config=list(gitops.PUSH_CONFIG.items()),
                                  auth=broker)  # fmt: skip
    entries = listed.splitlines()
    helpers = [e for e in entries if e.startswith("credential.helper=")]
    assert helpers[-2:] == ["credential.helper=", "credential.helper=" + helper_command()]
    assert entries[-1] == "receive.autogc=false" and "core.logallrefupdates=false" in entries
    assert "core.askpass=" in entries[entries.index("core.askpass=/tmp/steal"):]
    assert TOKEN not in listed


# -- the helper's refusals ------------------------------------------------------------------


def fake_tree(broker: CredentialBroker, ticket_pid: int, helper_pid: int = 900) -> None:
    """Make the broker see ``helper_pid`` as started by git-remote-http under ``ticket_pid``."""
    remote = os.path.join(broker._exec_path, "git-remote-http")
    chains = {helper_pid: [(helper_pid, sys.executable), (901, remote), (902, "/usr/bin/git"), (ticket_pid, "/usr/bin/git")]}
    broker._ancestry = lambda pid: chains.get(pid, [(pid, "/bin/sh"), (1, "/sbin/init")])


def get(ticket_nonce: str, host: str = "github.example.com", protocol: str = "https") -> dict[str, str]:
    return {"action": "get", "nonce": ticket_nonce, "protocol": protocol, "host": host}


CRED = Credential("https", "github.example.com", "x-access-token", TOKEN)


async def test_the_helper_answers_only_a_live_nonce_from_git_for_the_right_host(tmp_path):
    async with started(tmp_path) as broker:
        broker.set(CRED)
        with broker.call() as ticket:
            ticket.set_pid(500)
            fake_tree(broker, 500)
            assert await broker.answer(get(ticket.nonce), 900) == {"username": "x-access-token", "password": TOKEN}
            assert await broker.answer(get("0" * 64), 900) == {}  # a wrong nonce
        assert await broker.answer(get(ticket.nonce), 900) == {}  # the git call ended: its nonce is dead


async def test_a_request_for_another_host_is_refused_and_burns_the_nonce(tmp_path):
    async with started(tmp_path) as broker:
        broker.set(CRED)
        with broker.call() as ticket:
            ticket.set_pid(500)
            fake_tree(broker, 500)
            assert await broker.answer(get(ticket.nonce, host="evil.example.com"), 900) == {}
            assert await broker.answer(get(ticket.nonce, protocol="http"), 900) == {}
            assert await broker.answer(get(ticket.nonce), 900) == {}  # burnt: even the right host now
        assert "not for this host" in (ticket.refusal or "")


async def test_no_credential_yet_gets_nothing(tmp_path):
    async with started(tmp_path) as broker:
        with broker.call() as ticket:
            ticket.set_pid(500)
            fake_tree(broker, 500)
            assert await broker.answer(get(ticket.nonce), 900) == {}
        assert "the hub has sent no git credential" in (ticket.refusal or "")


async def test_a_process_holding_the_nonce_but_not_under_gits_transport_gets_nothing(tmp_path):
    async with started(tmp_path) as broker:
        # A pre-push hook or an askPass program of the agent's sees the nonce in its environment.
        broker.set(CRED)
        with broker.call() as ticket:
            ticket.set_pid(500)
            fake_tree(broker, 500)
            broker._ancestry = lambda pid: [(pid, "/bin/sh"), (500, "/usr/bin/git")]  # a hook: git's direct child
            assert await broker.answer(get(ticket.nonce), 777) == {}
        assert "did not come from git's own transport" in (ticket.refusal or "")


async def test_store_and_erase_do_nothing_and_erase_marks_a_refused_token(tmp_path):
    async with started(tmp_path) as broker:
        broker.set(CRED)
        with broker.call() as ticket:
            ticket.set_pid(500)
            fake_tree(broker, 500)
            assert await broker.answer({**get(ticket.nonce), "action": "store"}, 900) == {}
            assert (await broker.answer(get(ticket.nonce), 900))["password"] == TOKEN
            assert await broker.answer({**get(ticket.nonce), "action": "erase"}, 900) == {}
            assert ticket.rejected
            assert broker.credential == CRED  # nothing erased


async def test_the_helper_program_with_a_live_nonce_but_outside_git_prints_nothing(tmp_path):
    async with started(tmp_path) as broker:
        # The real helper, run by hand (not by git's transport) with a live nonce: refused.
        broker.set(CRED)
        with broker.call() as ticket:
            env = {"PATH": os.environ["PATH"], NONCE_ENV: ticket.nonce, SOCKET_ENV: str(broker.socket_path)}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", str(Path(RUNTIME_ROOT) / "cloudws_sandbox" / "credential_helper.py"), "get",
                env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            ticket.set_pid(os.getpid())
            out, err = await proc.communicate(b"protocol=https\nhost=github.example.com\n\n")
        assert proc.returncode == 0, err
        assert out == b""
        assert "did not come from git's own transport" in (ticket.refusal or "")


def test_the_helper_without_a_nonce_asks_nobody_and_prints_nothing():
    out = io.StringIO()
    assert helper_main("get", io.StringIO("protocol=https\nhost=github.example.com\n\n"), out, environ={}) == 0
    assert out.getvalue() == ""


async def test_the_agents_own_git_gets_no_credential(host, tmp_path):
    async with started(tmp_path) as broker:
        # The daemon cloned with the token; the agent's git in the same work tree has no live nonce.
        url = host.make_remote("private")
        broker.set(credential_for(host))
        work = tmp_path / "work"
        await gitops.clone(url, str(work), broker)
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        agent = subprocess.run(["git", "fetch", "origin"], cwd=work, env=env, capture_output=True, text=True)
        assert agent.returncode != 0 and "could not read Username" in agent.stderr


# -- the bridge op ----------------------------------------------------------------------------


def test_the_credentials_op_round_trips_and_bad_values_are_refused_without_being_quoted():
    op = bridge_credentials("https", "github.example.com:8443", "x-access-token", TOKEN)
    assert parse_bridge_op(json.dumps(op)) == op
    for bad in ({"password": "a\nprotocol=http"}, {"host": "evil.com/x"}, {"protocol": "ssh"}, {"password": ""},
                {"username": 7}):  # fmt: skip
        with pytest.raises(ProtocolError) as caught:
            parse_bridge_op(json.dumps({**op, **bad}))
        assert TOKEN not in caught.value.message and "a\nprotocol" not in caught.value.message


async def test_a_push_the_host_forbids_is_reported_as_refused(tmp_path):
    with GitHttpServer(tmp_path / "readonly", token=TOKEN, allow_push=False) as host:
        url = host.make_remote("private")
        async with started(tmp_path) as broker:
            broker.set(credential_for(host))
            work = tmp_path / "work"
            await gitops.clone(url, str(work), broker)
            (work / "new.txt").write_text("hello\n")
            await gitops.commit_all(str(work), "add new.txt", AUTHOR)
            with pytest.raises(gitops.GitError) as caught:
                await gitops.push(str(work), "cloudws/session", gitops.Upstream(url, str(tmp_path / "net.git")), broker)
        where = host.url
    assert f"the git host refused the token for {where} (HTTP 403)" in str(caught.value)
