"""Git credentials for the daemon's own clone, fetch and push, served to git's credential helper.

The token comes from the hub over the bridge (the ``credentials`` op) and stays in the daemon's
memory: never in a URL, ``.git/config``, a process's arguments or environment, a log or an event.
Each network git call the daemon makes gets, through ``GIT_CONFIG_*`` variables (which outrank
the repository's config), a helper list holding only credential_helper.py (run as
``cd / && exec PYTHON -I -S PATH``), and a one-time nonce. The helper asks the daemon's unix
socket for the credential; the daemon answers only when

* the nonce belongs to a git call running now,
* the asking process descends from that call through git's own ``git-remote-http(s)`` (so a hook,
  an ``askPass`` program or a transport the agent configured, which would see the nonce in its
  environment, is refused), and
* the protocol and host are the credential's.

The agent's own git has no live nonce, so it gets nothing. A refused request burns the nonce.

Threat model. The agent runs as the daemon's uid and writes the work tree. What that no longer
gets it, each with an attack test (tests/runtime/test_credential_attacks.py, test_undumpable.py):

* code in the helper: a ``json.py``, ``socket.py`` or ``cloudws_sandbox/`` planted at the work
  tree top (git's cwd) is not imported (``-I``: no cwd, ``PYTHONPATH`` or user site on the path);
* the token by configuration: fetch and push never read the work tree's or the global config
  (an ``http.proxy`` there would get the ``Authorization`` header) nor go to ``origin`` (its
  ``url``/``pushurl`` could name another repository on the same host); see gitops.Upstream;
* the token from memory: the daemon and ``attach`` are non-dumpable (``__main__``), so a
  same-uid process without CAP_SYS_PTRACE cannot ptrace them or read ``/proc/PID/mem``/``environ``.

What a same-uid agent still can, which only running the agent under another uid than the daemon
(not done here) stops: on Modal that uid is root, which ptraces and reads any process's memory
regardless of the dumpable flag, and anywhere the agent can rewrite what the daemon runs next
(the runtime's files, the Python or git it executes, the daemon's state dir between writing the
fetch dir's config and git reading it) and so get the token at the next network call; and the
processes of one network call (``git-remote-http`` and the helper) hold the token while they run
and are ordinary, dumpable processes of that uid, whose memory an agent watching for them can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shlex
import socket
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .credential_helper import MAX_SOCKET_PATH, NONCE_ENV, SOCKET_ENV

log = logging.getLogger("cloudws_sandbox.credentials")

SOCKET_NAME = "git-credential.sock"
REMOTE_HELPERS = ("git-remote-http", "git-remote-https")  # what git runs for http(s) transports
MAX_ANCESTRY = 8  # processes walked up from the asking helper
MAX_REQUEST_BYTES = 16 * 1024
HELPER_TIMEOUT_S = 30.0  # a helper that connects and says nothing is dropped after this long
START_WAIT_S = 10.0  # a helper that asks before the daemon has its git call's pid waits this long


@dataclass(frozen=True)
class Credential:
    protocol: str
    host: str
    username: str
    password: str = field(repr=False)

    def matches(self, protocol: str, host: str) -> bool:
        return protocol == self.protocol and host.lower() == self.host.lower()


class CredentialMissing(RuntimeError):
    """The start-up needs a credential that did not come."""


class Ticket:
    """One network git call: its nonce, its process, and what its helper asked and was told."""

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(32)
        self.pid: int | None = None
        self.started = asyncio.Event()
        self.live = True
        self.asked_host: str = ""
        self.served = False  # the credential went to git
        self.rejected = False  # git erased it afterwards: the host refused it (HTTP 401)
        self.refusal: str | None = None  # why the helper got nothing

    def set_pid(self, pid: int) -> None:
        self.pid = pid
        self.started.set()

    def explain(self, stderr: str) -> str | None:
        """A clear reason for a failed git call that asked for credentials, else None."""
        host = self.asked_host or "the git host"
        if self.served and (self.rejected or "Authentication failed" in stderr):
            return (f"the git host refused the token for {host} (HTTP 401): the token is wrong or expired; "
                    "check c.GitHub.token or GITHUB_TOKEN on the Jupyter server")  # fmt: skip
        if self.served and "error: 403" in stderr:
            return f"the git host refused the token for {host} (HTTP 403): it has no permission for this repository"
        if "could not read Username" in stderr or "could not read Password" in stderr:
            why = self.refusal or "no credential was given"
            return f"{host} asked for a login and {why}"
        return None


def helper_command() -> str:
    """The ``credential.helper`` value (it holds no secret): this Python, isolated (``-I``: no
    ``PYTHONPATH``, user site or script-relative path; ``-S``: no site-packages), running
    credential_helper.py by its absolute path from ``/``, so nothing the agent writes in the
    work tree, git's cwd, can be imported into it."""
    script = Path(__file__).resolve().with_name("credential_helper.py")
    return f"!cd / && exec {shlex.quote(sys.executable)} -I -S {shlex.quote(str(script))}"


def config_env(entries: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``GIT_CONFIG_COUNT`` and its ``GIT_CONFIG_KEY_n``/``VALUE_n`` for ``entries``, in order."""
    env = {"GIT_CONFIG_COUNT": str(len(entries))}
    for i, (key, value) in enumerate(entries):
        env |= {f"GIT_CONFIG_KEY_{i}": key, f"GIT_CONFIG_VALUE_{i}": value}
    return env


class CredentialBroker:
    """Holds the credential and serves it to the helpers of the daemon's own git calls."""

    def __init__(self, socket_path: Path, *, required: bool = False, timeout_s: float = 120.0,
                 ancestry: Callable[[int], list[tuple[int, str]]] | None = None) -> None:  # fmt: skip
        """``required``: the repository needs the credential, so network git calls wait for it
        (at most ``timeout_s``) rather than ask the host without it."""
        self.socket_path = socket_path
        self.required = required
        self.timeout_s = timeout_s
        self.credential: Credential | None = None
        self.arrived = asyncio.Event()
        self._tickets: dict[str, Ticket] = {}
        self._server: asyncio.AbstractServer | None = None
        self._dir_fd: int | None = None
        self._exec_path = ""
        self._ancestry = ancestry or proc_ancestry

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._exec_path = await _git_exec_path()
        path = self._bindable(self.socket_path)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()
        old_umask = os.umask(0o177)  # 0600 from the start: no moment when another user could connect
        try:
            self._server = await asyncio.start_unix_server(self._on_connection, path=path, limit=MAX_REQUEST_BYTES)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)

    def _bindable(self, path: Path) -> str:
        if len(str(path)) <= MAX_SOCKET_PATH:
            return str(path)
        self._dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
        return f"/proc/self/fd/{self._dir_fd}/{path.name}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def set(self, credential: Credential) -> None:
        self.credential = credential
        self.arrived.set()

    async def ready(self) -> None:
        """Return once a git call may start: at once, or when ``required``, once the credential
        is here; raises :class:`CredentialMissing` after ``timeout_s``."""
        if not self.required or self.arrived.is_set():
            return
        try:
            await asyncio.wait_for(self.arrived.wait(), self.timeout_s)
        except asyncio.TimeoutError:
            raise CredentialMissing(f"the hub sent no git credential within {self.timeout_s:g} s, and the "
                                    "repository needs one") from None  # fmt: skip

    # -- git calls --------------------------------------------------------------------------

    @contextlib.contextmanager
    def call(self) -> Iterator[Ticket]:
        """A ticket for one git call, live until the block ends."""
        ticket = Ticket()
        self._tickets[ticket.nonce] = ticket
        try:
            yield ticket
        finally:
            ticket.live = False
            self._tickets.pop(ticket.nonce, None)

    def env(self, ticket: Ticket) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """The config entries and variables one git call runs with: git's helper list emptied
        (the repository's own helpers would be handed the token to ``store``), then this
        runtime's; no askPass program (it would run with the nonce beside git's remote helper)."""
        entries = [("credential.helper", ""), ("credential.helper", helper_command()), ("core.askPass", "")]
        return entries, {NONCE_ENV: ticket.nonce, SOCKET_ENV: str(self.socket_path)}

    # -- the helper's requests --------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await asyncio.wait_for(reader.readline(), HELPER_TIMEOUT_S)
            peer_pid = _peer_pid(writer)
            reply = await self.answer(_parse_request(raw), peer_pid)
            writer.write((json.dumps(reply) + "\n").encode())
            await writer.drain()
        except (ValueError, OSError, asyncio.TimeoutError) as exc:
            log.warning("a git credential request was dropped: %s", type(exc).__name__)
        finally:
            writer.close()

    async def answer(self, request: dict[str, str], peer_pid: int | None) -> dict[str, str]:
        """The reply to one helper request: the credential, or ``{}``."""
        action = request.get("action", "")
        ticket = self._tickets.get(request.get("nonce", ""))
        if ticket is None or not ticket.live:
            log.info("git credential %s refused: no git call of the daemon has that nonce", action or "request")
            return {}
        protocol, host = request.get("protocol", ""), request.get("host", "")
        if action in ("store", "erase"):
            # Nothing is stored or erased: an erase after a served get says the host refused it.
            if action == "erase" and ticket.served and self._descends(ticket, peer_pid):
                ticket.rejected = True
            return {}
        if action != "get":
            return {}
        if ticket.pid is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ticket.started.wait(), START_WAIT_S)
        from_git = self._descends(ticket, peer_pid)
        if from_git and protocol and host:  # for the error message, if git fails
            ticket.asked_host = f"{protocol}://{host}"
        refusal = self._refusal(from_git, protocol, host)
        if refusal is not None:
            ticket.refusal = refusal
            self._tickets.pop(ticket.nonce, None)  # burnt: whatever asked next with it gets nothing
            ticket.live = False
            log.info("git credential refused: %s", refusal)
            return {}
        assert self.credential is not None
        ticket.served = True
        return {"username": self.credential.username, "password": self.credential.password}

    def _refusal(self, from_git: bool, protocol: str, host: str) -> str | None:
        if not from_git:
            return "the request did not come from git's own transport of the daemon's git call"
        if self.credential is None:
            return ("the hub has sent no git credential for it (set c.GitHub.token, or GITHUB_TOKEN, on the "
                    "Jupyter server for repositories on that host)")  # fmt: skip
        if not self.credential.matches(protocol, host):
            return (f"the hub's git credential is for {self.credential.protocol}://{self.credential.host}, "
                    "not for this host")  # fmt: skip
        return None

    def _descends(self, ticket: Ticket, peer_pid: int | None) -> bool:
        """Whether ``peer_pid`` was started by git's http(s) transport (within two steps: a
        shell may stand between them) under the ticket's git process."""
        if peer_pid is None or ticket.pid is None:
            return False
        try:
            chain = self._ancestry(peer_pid)
        except OSError:
            return False
        pids = [pid for pid, _ in chain]
        if ticket.pid not in pids:
            return False
        below = chain[: pids.index(ticket.pid)]
        remote = [i for i, (_, exe) in enumerate(below) if self._is_remote_helper(exe)]
        return bool(remote) and 1 <= remote[0] <= 2

    def _is_remote_helper(self, exe: str) -> bool:
        return os.path.dirname(exe) == self._exec_path and os.path.basename(exe) in REMOTE_HELPERS


def proc_ancestry(pid: int) -> list[tuple[int, str]]:
    """``pid`` and its ancestors as (pid, resolved executable), from /proc, nearest first."""
    chain: list[tuple[int, str]] = []
    while pid > 1 and len(chain) < MAX_ANCESTRY:
        try:
            exe = os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            exe = ""
        chain.append((pid, exe))
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the parent
    return chain


def _peer_pid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid or None


def _parse_request(raw: bytes) -> dict[str, str]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("a credential request must be a JSON object")
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


async def _git_exec_path() -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", "--exec-path", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await proc.communicate()
    return os.path.realpath(out.decode().strip()) if proc.returncode == 0 else ""
