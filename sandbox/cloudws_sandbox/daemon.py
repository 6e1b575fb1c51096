"""The sandbox runtime daemon: lives as long as the sandbox, and outlives any hub connection.

It clones the repository, puts the session branch in place, runs Claude Code for each prompt,
logs every event to its own disk, commits and pushes after each prompt (and when the hub asks,
for a pull request), and serves hubs over
the bridge (JSON lines on a unix socket) with replay from any sequence number. A hub that
restarts reattaches with the last number it stored and loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .protocol import (
    BRIDGE_MAX_LINE_BYTES,
    AssistantText,
    ErrorEvent,
    ExecutionComplete,
    GitEvent,
    ProtocolError,
    SandboxStatusEvent,
    dumps,
    parse_bridge_op,
)

from . import gitops, startup
from .credentials import SOCKET_NAME as CREDENTIAL_SOCKET_NAME
from .credentials import Credential, CredentialBroker
from .redaction import Redactor, StreamRedactor
from .setup_script import SETUP_TIMEOUT_S

from .agent import AgentExited, ClaudeAgent
from .connection import OUTBOX_MAX_BYTES, Connection
from .conversation import Conversation, config_dir
from .eventlog import EventLog
from .idle import IDLE_TIMEOUT_ENV, IdleTimer
from .normalize import BlockEnd, Delta, Normalizer, TurnEnd

log = logging.getLogger("cloudws_sandbox.daemon")

SHUTDOWN_GRACE_S = 10.0  # how long the start-up and prompt tasks get to end when the daemon stops
INTERRUPT_GRACE_S = 10.0  # after this, an interrupt that the CLI has not honoured kills it
NET_GIT_DIR = "net.git"  # in the state dir: the bare git dir the daemon fetches and pushes from


class ResumeFailed(Exception):
    """The CLI could not load the conversation it was asked to resume."""


def idle_timeout_from_env(environ: dict[str, str] | None = None) -> float:
    """How long the daemon may go with no hub connected and no prompt before it ends itself
    (set by the hub from ``sandbox_idle_timeout_s``); 0, or unset, is never."""
    raw = (os.environ if environ is None else environ).get(IDLE_TIMEOUT_ENV, "")
    try:
        return max(float(raw), 0.0) if raw.strip() else 0.0
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds", IDLE_TIMEOUT_ENV, raw)
        return 0.0


@dataclass
class DaemonConfig:
    session_id: str
    repo: str
    branch: str
    cli_path: str
    workdir: str
    base_branch: str = ""
    model: str | None = None
    max_tool_output_chars: int = 64_000
    permission_mode: str = "bypassPermissions"
    agent_args: list[str] = field(default_factory=list)
    # Environment variables whose values never reach an event (a tool may print them).
    secret_names: list[str] = field(default_factory=list)
    # How the sandbox's disk came to be: "" a fresh one (clone); "snapshot" a snapshot of this
    # session's earlier sandbox (work tree and branch kept as they were, then fetch); "prebuild"
    # a repository image, cloned at the base branch with its setup run (fetch, then branch).
    restore_kind: str = ""
    # Make a repository image: clone at the base branch, run the setup script, report ready
    # without starting the agent; the hub then snapshots the sandbox.
    prebuild: bool = False
    setup_timeout_s: float = SETUP_TIMEOUT_S  # the repository's .cloudws/setup.sh, at most
    # The repository needs the git credential the hub sends over the bridge (``credentials``):
    # clone, fetch and push wait for it, at most ``git_credentials_timeout_s``.
    git_credentials: bool = False
    git_credentials_timeout_s: float = 120.0

    @classmethod
    def load(cls, path: Path) -> DaemonConfig:
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))


class Daemon:
    def __init__(self, config: DaemonConfig, state_dir: Path, socket_path: Path | None = None,
                 listen_fd: int | None = None, outbox_max_bytes: int = OUTBOX_MAX_BYTES) -> None:  # fmt: skip
        """Serve the bridge on a new unix socket at ``socket_path``, or on the listening socket
        ``listen_fd`` that the backend made outside the sandbox (where the agent cannot reach it)."""
        if (socket_path is None) == (listen_fd is None):
            raise ValueError("give exactly one of socket_path and listen_fd")
        self.config = config
        self.outbox_max_bytes = outbox_max_bytes
        self.state_dir = state_dir
        self.socket_path = socket_path
        self.listen_fd = listen_fd
        self.redactor = Redactor(os.environ.get(name) for name in config.secret_names)
        self.log = EventLog(state_dir / "events.jsonl", redact=self.redactor.data)
        self.stream_redactor = StreamRedactor(self.redactor)  # one stream per (message_id, index)
        self.seen_prompts = _PromptBook(state_dir / "prompts.jsonl")
        self.normalizer = Normalizer(max_output_chars=config.max_tool_output_chars)
        self.agent: ClaudeAgent | None = None
        self.current: str | None = None
        self._lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._interrupt_requested = False
        self._interrupt_wake = asyncio.Event()  # set with _interrupt_requested: wakes a prompt waiting for setup
        self._turn_live = False  # the agent has the current prompt: an interrupt must go to it
        self._default_model: str | None = None  # what the agent runs on when no model is chosen
        self._setup_done = asyncio.Event()
        # Held by a prompt from start to end, and by a ``push`` op: never both in the work tree.
        self._git_lock = asyncio.Lock()
        self._pushes: set[asyncio.Task[None]] = set()
        self._setup_error: str | None = None
        self._stopping = asyncio.Event()
        self._stop_detail = "the sandbox runtime shut down"
        self._bridges: set[Connection] = set()
        # The conversation lives in the CLI's config dir, which the backend keeps per session.
        self.conversation = Conversation(config_dir(), config.workdir)
        self.idle = IdleTimer(idle_timeout_from_env(), self._busy, self._end_idle)
        self.credentials = CredentialBroker(state_dir / CREDENTIAL_SOCKET_NAME, required=config.git_credentials,
                                            timeout_s=config.git_credentials_timeout_s)  # fmt: skip
        # Fetch and push go to config.repo from a git dir of the daemon's, never through the
        # work tree's config or its origin, which the agent may have changed (see gitops).
        self.upstream = gitops.Upstream(config.repo, str(state_dir / NET_GIT_DIR))

    # -- life -------------------------------------------------------------------------------

    async def serve(self) -> None:
        if self.listen_fd is not None:
            listener = socket.socket(fileno=self.listen_fd)
            server = await asyncio.start_unix_server(self._on_connection, sock=listener, limit=BRIDGE_MAX_LINE_BYTES)
            where = f"inherited socket {listener.getsockname()}"
        else:
            assert self.socket_path is not None
            if self.socket_path.exists():
                self.socket_path.unlink()
            server = await asyncio.start_unix_server(
                self._on_connection, path=str(self.socket_path), limit=BRIDGE_MAX_LINE_BYTES
            )
            os.chmod(self.socket_path, 0o600)
            where = str(self.socket_path)
        await self.credentials.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        tasks = [loop.create_task(self._setup()), loop.create_task(self._worker())]
        log.info("serving on %s", where)
        self.idle.touch()
        try:
            await self._stopping.wait()
        finally:
            self.idle.cancel()
            server.close()
            tasks += self._pushes
            for task in tasks:
                task.cancel()
            # A cancelled setup kills its script as it ends: let it, before the log closes (bounded:
            # shutting down must not hang on a task).
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
            if self.agent is not None:
                await self.agent.close()
            self.log.append(SandboxStatusEvent("stopped", self._stop_detail))
            for bridge in list(self._bridges):
                bridge.finish()
            await self.credentials.close()
            self.log.close()

    async def _setup(self) -> None:
        config = self.config
        try:
            tree = await startup.prepare_work_tree(
                repo=config.repo, workdir=config.workdir, base_branch=config.base_branch, branch=config.branch,
                restore_kind=config.restore_kind, prebuild=config.prebuild, append=self.log.append,
                upstream=self.upstream, auth=self.credentials,
            )  # fmt: skip
            if tree.fresh:  # a restored work tree had its setup run before its image was made
                await startup.run_setup_step(config.workdir, self.redactor, config.setup_timeout_s, self.log.append)
            if not config.prebuild:  # a prebuild is snapshotted next: no agent goes into the image
                await self._start_agent_ahead()
            self.log.append(SandboxStatusEvent("ready", tree.detail))
        except Exception as exc:  # whatever it was, prompts must hear of it rather than wait
            known = (gitops.GitError, OSError, startup.StartupError)
            self._setup_error = str(exc) if isinstance(exc, known) else f"setup failed: {exc!r}"
            self.log.append(SandboxStatusEvent("failed", self._setup_error))
        finally:
            self._setup_done.set()
            if not self._stopping.is_set():
                self.idle.touch()  # the end of the start-up starts the idle count

    async def _start_agent_ahead(self) -> None:
        # Claude Code takes ~0.2 s to boot and prints nothing until its first prompt, so
        # starting it now takes that off the first prompt's latency.
        step = startup.Step(self.log.append, "agent", "starting Claude Code")
        try:
            await self._ensure_agent(None)
        except OSError as exc:
            log.warning("could not start Claude Code ahead of the first prompt: %s", exc)
            step.failed(f"could not start Claude Code ahead of the first prompt (it starts with the prompt): {exc}")
            return
        step.done()

    def _busy(self) -> bool:
        """Whether anything holds the sandbox: a connected hub, a prompt running or queued, or the
        start-up still under way (a setup script may run for many minutes)."""
        return (bool(self._bridges) or self.current is not None or not self._queue.empty()
                or self._git_lock.locked() or not self._setup_done.is_set())  # fmt: skip

    def _end_idle(self) -> None:
        timeout_s = self.idle.timeout_s
        self._stop_detail = f"idle: no hub connected and no prompt for {timeout_s:g} s, so the sandbox ended itself"
        log.info("%s", self._stop_detail)
        self._stopping.set()

    # -- prompts ----------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            op = await self._queue.get()
            try:
                async with self._git_lock:
                    await self._run_prompt(op)
            except Exception as exc:  # one bad prompt must not take the daemon down
                log.exception("prompt %s failed", op.get("message_id"))
                try:
                    self.log.append(ExecutionComplete(op["message_id"], False, error=f"sandbox error: {exc}"))
                except Exception:
                    log.exception("could not report the failure of prompt %s", op.get("message_id"))
            finally:
                self.idle.touch()

    async def _run_prompt(self, op: dict[str, Any]) -> None:
        message_id = op["message_id"]
        # Current from the start: a Stop that comes while the repository is still cloning counts.
        self.current, self._interrupt_requested, self._turn_live = message_id, False, False
        self._interrupt_wake.clear()
        try:
            if not self._setup_done.is_set():
                # A setup script may run for many minutes: a Stop meanwhile ends the prompt now.
                await _first_of(self._setup_done.wait(), self._interrupt_wake.wait())
            if self._interrupt_requested and not self._setup_done.is_set():
                self.log.append(ExecutionComplete(message_id, False, error="stopped before it started",
                                                  interrupted=True))  # fmt: skip
                return
            if self._setup_error is not None:
                self.log.append(ExecutionComplete(message_id, False, error=f"sandbox setup failed: {self._setup_error}"))
                return
            started_s = time.monotonic()
            head_before = await gitops.head_sha(self.config.workdir)
            if self._interrupt_requested:
                self.log.append(ExecutionComplete(message_id, False, error="stopped before it started",
                                                  interrupted=True))  # fmt: skip
                return
            try:
                try:
                    turn = await self._run_turn(op)
                except ResumeFailed as exc:
                    # Never fail the prompt for it: say so, and run it in a fresh conversation.
                    self.agent = None  # it has ended; the next one starts afresh
                    self._conversation_lost(str(exc))
                    turn = await self._run_turn(op)
            except AgentExited as exc:
                turn = TurnEnd(False, str(exc), None, {}, None, None, None)
            interrupted = self._interrupt_requested
            self._turn_live = False
            # The prompt becomes the commit body, and a commit is pushed where anyone may read it.
            message = gitops.commit_message(self.redactor.text(op["text"]), self.config.session_id)
            await self._commit_and_push(head_before, op.get("author"), message, message_id)
            error = "interrupted by the user" if interrupted else turn.error
            self.log.append(
                ExecutionComplete(
                    message_id, turn.success and not interrupted, error, turn.cost_usd, turn.usage,
                    int((time.monotonic() - started_s) * 1000), interrupted,
                )  # fmt: skip
            )
        finally:
            self.current, self._turn_live = None, False

    async def _run_turn(self, op: dict[str, Any]) -> TurnEnd:
        await self._ensure_agent(op.get("model"))
        self.normalizer.begin(op["message_id"])
        assert self.agent is not None
        await self.agent.send_prompt(op["text"])
        self._turn_live = True
        if self._interrupt_requested:  # came while the prompt was being handed over
            await self.agent.interrupt()
        turn = await self._pump_until_turn_end()
        if self.agent.model is None and self.normalizer.model:
            self._default_model = self._default_model or self.normalizer.model
        return turn

    async def _ensure_agent(self, model: str | None) -> None:
        """A live agent on the model this prompt wants; no model means the one the agent ran
        before any prompt chose one (learnt from its first turn)."""
        wanted = model or self.config.model
        if self.agent is not None and self.agent.alive:
            target = wanted or self._default_model
            if target and target != (self.agent.model or self._default_model):
                await self.agent.set_model(target)
            return
        if self.agent is not None and _resume_failed(self.agent):  # e.g. the one started ahead
            self._conversation_lost(await self.agent.exit_detail())
        self.agent = ClaudeAgent(
            self.config.cli_path, self.config.workdir, dict(os.environ), model=wanted,
            resume_session_id=await self._resume_id(),
            permission_mode=self.config.permission_mode, extra_args=self.config.agent_args,
        )  # fmt: skip
        self._lines = asyncio.Queue()
        await self.agent.start()
        asyncio.get_running_loop().create_task(self._read_agent(self.agent, self._lines))

    async def _resume_id(self) -> str | None:
        """The agent conversation to continue, if any: the one this session had, in this sandbox
        or an earlier one, once its transcript is where the CLI looks for it."""
        agent_session_id = self.conversation.saved_id
        if agent_session_id is None:
            return None
        problem = await asyncio.to_thread(self.conversation.prepare_resume, agent_session_id)
        if problem is None:
            return agent_session_id
        self._conversation_lost(problem)
        return None

    def _conversation_lost(self, reason: str) -> None:
        """The earlier conversation cannot be resumed: forget it, and tell the user in the transcript."""
        log.warning("cannot resume agent session %s: %s", self.conversation.saved_id, reason)
        self.conversation.save(None)
        self.normalizer.agent_session_id = None
        self.log.append(ErrorEvent(
            "conversation_not_resumed",
            f"The earlier conversation could not be resumed ({reason}); the agent goes on in a fresh "
            "one, without the earlier turns.",
            self.current,
        ))  # fmt: skip

    @staticmethod
    async def _read_agent(agent: ClaudeAgent, lines: asyncio.Queue[dict[str, Any] | None]) -> None:
        try:
            async for line in agent.lines():
                lines.put_nowait(line)
        finally:
            lines.put_nowait(None)  # the process ended

    async def _pump_until_turn_end(self) -> TurnEnd:
        agent = self.agent
        while True:
            line = await self._lines.get()
            if agent is not None and (line is None or line.get("type") == "result") and _resume_failed(agent):
                raise ResumeFailed(await agent.exit_detail())
            if line is None:
                code = self.agent.returncode if self.agent else None
                outputs = self.normalizer.abandon(f"Claude Code exited (code {code}) during the turn", time.time())
            else:
                # Redacted before the normalizer cuts long values: a secret across a cut would
                # lose its end, and the rest would no longer match.
                outputs = self.normalizer.feed(self.redactor.data(line), time.time())
                if self.normalizer.agent_session_id != self.conversation.saved_id:
                    self.conversation.save(self.normalizer.agent_session_id)  # for the next sandbox
            for out in outputs:
                if isinstance(out, TurnEnd):
                    for stream in self.stream_redactor.streams():  # blocks the agent never closed
                        self._broadcast_delta(stream, self.stream_redactor.end(stream))
                    return out
                if isinstance(out, Delta):
                    stream = (out.message_id, out.index)
                    self._broadcast_delta(stream, self.stream_redactor.feed(stream, out.text))
                elif isinstance(out, BlockEnd):
                    stream = (out.message_id, out.index)
                    self._broadcast_delta(stream, self.stream_redactor.end(stream))
                else:
                    if isinstance(out, AssistantText):  # may come before its block's end
                        stream = (out.message_id, out.index)
                        self._broadcast_delta(stream, self.stream_redactor.end(stream))
                    self.log.append(out)

    def _broadcast_delta(self, stream: Any, text: str) -> None:
        if text:
            message_id, index = stream
            self._broadcast({"kind": "delta", "message_id": message_id, "index": index, "text": text})

    async def _interrupt(self) -> None:
        agent, message_id = self.agent, self.current
        if message_id is None:
            return
        self._interrupt_requested = True
        self._interrupt_wake.set()
        if not self._turn_live or agent is None:
            return  # _run_prompt sees the request before it hands the prompt to the agent
        try:
            await agent.interrupt()
        except AgentExited:
            return
        await asyncio.sleep(INTERRUPT_GRACE_S)
        if self.current == message_id and agent.alive:
            log.warning("interrupt not honoured in %.0f s; killing Claude Code", INTERRUPT_GRACE_S)
            await agent.close(timeout_s=0)

    async def _commit_and_push(self, head_before: str, author_info: dict[str, Any] | None, message: str,
                               message_id: str | None, *, push_unchanged: bool = False) -> dict[str, Any]:
        """Commit what the work tree holds and push the branch; log and return the ``git`` event.
        ``push_unchanged``: push even when nothing new was committed (an earlier push failed)."""
        workdir, branch = self.config.workdir, self.config.branch
        author_info = author_info or {}
        author = gitops.Author(author_info.get("name") or "Jupyter user",
                               author_info.get("email") or "jupyter@localhost")  # fmt: skip
        committed = False
        sha = head_before
        files: list[dict[str, Any]] = []
        files_total = 0
        try:
            committed = await gitops.commit_all(workdir, message, author)
            sha = await gitops.head_sha(workdir)
            changed = committed or sha != head_before
            if changed:
                files, files_total = await self._changed_files(head_before, sha)
            pushing = changed or (push_unchanged and bool(sha))
            if pushing:
                await gitops.push(workdir, branch, self.upstream, self.credentials)
            return self.log.append(GitEvent(branch, sha, pushed=pushing, committed=changed, message_id=message_id,
                                            before=head_before or None, files=files, files_total=files_total))  # fmt: skip
        except gitops.GitError as exc:
            return self.log.append(
                GitEvent(branch, sha, pushed=False, committed=committed, message_id=message_id, error=str(exc),
                         before=head_before or None, files=files, files_total=files_total)  # fmt: skip
            )

    async def _push_for_pull_request(self, op: dict[str, Any], outbox: Connection) -> None:
        """The ``push`` op, with the work-tree lock already held: commit anything left
        uncommitted, push the branch even if nothing was, and ack with the ``git`` event's seq."""
        reply = {"kind": "ack", "op": "push", "request_id": op["request_id"]}
        try:
            head = await gitops.head_sha(self.config.workdir)
            message = gitops.pull_request_commit_message(self.config.session_id)
            event = await self._commit_and_push(head, op.get("author"), message, None, push_unchanged=True)
            outbox.send({**reply, "result": "done", "seq": event["seq"], "message": event.get("error") or ""})
        except Exception as exc:  # the hub waits on this answer: it must come whatever happened
            log.exception("the push for a pull request failed")
            outbox.send({**reply, "result": "unavailable", "seq": None, "message": f"sandbox error: {exc}"})
        finally:
            self._git_lock.release()
            self.idle.touch()

    def _push_refusal(self) -> dict[str, Any] | None:
        """Why a ``push`` op cannot run now, as its ack says it, or None."""
        if self.current is not None or not self._queue.empty() or self._git_lock.locked():
            return {"result": "busy", "message": "a prompt is running (it pushes the branch when it ends)"}
        if not self._setup_done.is_set():
            return {"result": "unavailable", "message": "the sandbox is still starting"}
        if self._setup_error is not None:
            return {"result": "unavailable", "message": f"the sandbox's start-up failed: {self._setup_error}"}
        return None

    async def _changed_files(self, before: str, sha: str) -> tuple[list[dict[str, Any]], int]:
        """The prompt's changed files for its ``git`` event; a failure to list them loses only the list."""
        try:
            return await gitops.changed_files(self.config.workdir, before, sha)
        except (gitops.GitError, ValueError, IndexError) as exc:
            log.warning("could not list the files changed by the prompt: %s", exc)
            return [], 0

    # -- bridge connections -----------------------------------------------------------------

    def _broadcast(self, frame: dict[str, Any]) -> None:
        for bridge in self._bridges:
            bridge.send_delta(frame)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        outbox = Connection(writer, self.log, self.outbox_max_bytes)
        self._bridges.add(outbox)
        self.idle.check()  # a connected hub holds the sandbox: no idle end while it stays
        self.log.subscribe(outbox.on_event)
        writer_task = asyncio.get_running_loop().create_task(outbox.run())
        try:
            while True:
                try:
                    raw = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    outbox.send({"kind": "error", "code": "too_large", "message": "bridge line too long"})
                    break
                if not raw:
                    break
                try:
                    op = parse_bridge_op(raw)
                except ProtocolError as exc:
                    outbox.send({"kind": "error", "code": exc.code, "message": exc.message})
                    continue
                await self._handle_op(op, outbox)
        except ConnectionError:
            pass
        finally:
            self.log.unsubscribe(outbox.on_event)
            self._bridges.discard(outbox)
            outbox.finish()
            self.idle.touch()  # the last hub to leave starts the count
            await writer_task

    async def _handle_op(self, op: dict[str, Any], outbox: Connection) -> None:
        name = op["op"]
        if name == "attach":
            # The one trace a reattach leaves in the sandbox (daemon.log): operators and tests see it.
            log.info("a hub attached after seq %s of %s", op.get("after") or 0, self.log.last_seq)
            outbox.send({"kind": "attached", "last_seq": self.log.last_seq, "busy": self.current,
                         "session_id": self.config.session_id})  # fmt: skip
            outbox.replay(op.get("after") or 0)  # streamed from disk, then live
        elif name == "prompt":
            duplicate = self.seen_prompts.known(op["message_id"])
            if not duplicate:
                self.seen_prompts.mark(op["message_id"], "queued")
                self._queue.put_nowait(op)
            outbox.send({"kind": "ack", "op": "prompt", "message_id": op["message_id"],
                               "duplicate": duplicate})  # fmt: skip
        elif name == "interrupt":
            asyncio.get_running_loop().create_task(self._interrupt())
            outbox.send({"kind": "ack", "op": "interrupt", "message_id": self.current})
        elif name == "credentials":
            # Never logged: the password is the user's token. Redacted from all the sandbox sends.
            self.redactor.add(op["password"])
            self.credentials.set(Credential(op["protocol"], op["host"], op["username"], op["password"]))
            outbox.send({"kind": "ack", "op": "credentials"})
        elif name == "push":
            refusal = self._push_refusal()
            if refusal is not None:
                outbox.send({"kind": "ack", "op": "push", "request_id": op["request_id"], "seq": None, **refusal})
                return
            await self._git_lock.acquire()  # free, so taken at once: no prompt can start in between
            task = asyncio.get_running_loop().create_task(self._push_for_pull_request(op, outbox))
            self._pushes.add(task)
            task.add_done_callback(self._pushes.discard)
        elif name == "ping":
            outbox.send({"kind": "pong"})
        elif name == "shutdown":
            outbox.send({"kind": "ack", "op": "shutdown"})
            self._stopping.set()


async def _first_of(*waits: Any) -> None:
    """Wait until the first of ``waits`` is done; the rest are cancelled."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _resume_failed(agent: ClaudeAgent) -> bool:
    """A CLI started with ``--resume`` that ended its output, or the process, before its first
    ``system init`` line: it could not load the conversation."""
    return agent.resume_session_id is not None and not agent.saw_init


class _PromptBook:
    """Which prompt ids this sandbox has been given, kept on disk so a resent prompt runs once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.status: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                self.status[entry["message_id"]] = entry["status"]

    def known(self, message_id: str) -> bool:
        return message_id in self.status

    def mark(self, message_id: str, status: str) -> None:
        self.status[message_id] = status
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(dumps({"message_id": message_id, "status": status}) + "\n")
