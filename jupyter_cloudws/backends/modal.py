"""Sandboxes on Modal (``c.CloudWorkspaces.backend = "modal"``): one ``modal.Sandbox`` per session
sandbox, running the runtime daemon as its main process.

The hub dials out, as always: the bridge is the stdio of ``python -m cloudws_sandbox attach``
exec'd in the sandbox (line mode), the same protocol as locally. Inside the Jupyter server only
the ``.aio`` forms are called, each bounded by ``api_timeout_s``, so an unreachable API costs a
spawn that many seconds and never stalls the server. Secrets reach the sandbox as Modal secrets,
never in an image, an argument or a tag.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.metadata
import io
import json
import os
import tarfile
import uuid
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from traitlets import Float, Int, List, Unicode

from cloudws_sandbox import image as layout
from cloudws_sandbox.daemon import DaemonConfig
from cloudws_sandbox.protocol import BRIDGE_MAX_LINE_BYTES

from .base import BridgeStream, ExecResult, LineTooLong, Liveness, ProgressFn, SandboxBackend, SandboxGone, SandboxSpec, SnapshotGone
from .local import _scrub

T = TypeVar("T")

# Modal buffers at most 2 MiB of a process's stdin before a drain; stay well below.
STDIN_CHUNK_BYTES = 1024 * 1024
TAG_SESSION = "cloudws-session"
TAG_OWNER = "cloudws-owner"
TAG_HUB = "cloudws-hub"
MAX_TAG_CHARS = 63  # keep tag values short and plain: they are labels, not data
CLI_PACKAGE = "claude-agent-sdk"
LOG_TAIL_LINES = 3
MAX_CONVERSATION_BYTES = 256 * 1024 * 1024  # a saved conversation, packed; more is refused
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024  # ...and unpacked (a gzip bomb stops here)
MAX_UNPACKED_MEMBERS = 100_000
LOG_TAIL_BYTES = 8192  # what exit_reason keeps of a dead sandbox's log: its end
MAX_REASON_LINE_CHARS = 300
TAG_LAUNCH = "cloudws-launch"  # names the daemon's state dir, where its bridge socket lives
EXIT_LIFETIME = 124  # how Modal reports a sandbox that reached its timeout
EXIT_TERMINATED = 137  # ...and one that was terminated


def credentials_problem(environ: Mapping[str, str], home: str) -> str | None:
    """Why Modal calls would fail for want of credentials, or None when some are set.

    Modal reads ``MODAL_TOKEN_ID``/``MODAL_TOKEN_SECRET`` or a config file (``MODAL_CONFIG_PATH``,
    by default ``~/.modal.toml``, written by ``modal token new``)."""
    if environ.get("MODAL_TOKEN_ID") and environ.get("MODAL_TOKEN_SECRET"):
        return None
    config = environ.get("MODAL_CONFIG_PATH") or os.path.join(home, ".modal.toml")
    if os.path.isfile(config):
        return None
    return (
        "no Modal credentials: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET in the Jupyter server's "
        f"environment, or run `modal token new` to write {config}"
    )


def cli_requirement() -> str:
    """The Claude Code CLI for the image: the ``claude-agent-sdk`` release this hub has installed
    (pinned in pyproject), so local and Modal sandboxes run the same CLI."""
    return f"{CLI_PACKAGE}=={importlib.metadata.version(CLI_PACKAGE)}"


def tag_value(value: str) -> str:
    return value[:MAX_TAG_CHARS]


class ModalBackend(SandboxBackend):
    name = "modal"
    supports_snapshot = True
    supports_reattach = True

    modal_module = Unicode(
        "modal", help="The module that provides Modal's API; tests name a fake bound to modal 1.6's signatures."
    ).tag(config=True)
    app_name = Unicode("jupyter-cloudws", help="The Modal app that sandboxes are created in (made if missing).").tag(
        config=True
    )
    image = Unicode(
        "",
        help="The base image instead of Debian slim: a registry tag (e.g. 'python:3.12-slim', which must have "
        "Python 3.10+ and apt) or a Modal image id ('im-...', used as it is: it must already hold git, the "
        "Claude Code CLI and the runtime).",
    ).tag(config=True)
    secrets = List(
        Unicode(), help="Names of Modal secrets to add to every sandbox's environment (e.g. a git token)."
    ).tag(config=True)
    cpu = Float(1.0, help="CPU cores reserved for each sandbox.").tag(config=True)
    memory_mib = Int(2048, help="Memory reserved for each sandbox, in MiB.").tag(config=True)
    timeout_s = Int(
        4 * 3600,
        help="A sandbox's lifetime in seconds (Modal ends it then; at most 24 h). The session's next prompt "
        "starts a new one from its latest snapshot.",
    ).tag(config=True)
    region = Unicode("", help="Modal region(s) to run sandboxes in, e.g. 'us-east'; empty lets Modal choose.").tag(
        config=True
    )
    environment = Unicode("", help="The Modal environment; empty uses the profile's default.").tag(config=True)
    api_timeout_s = Float(
        30.0, help="The longest any one Modal API call may take before it counts as failed (the server never waits longer)."
    ).tag(config=True)
    image_build_timeout_s = Float(
        1800.0, help="How long the first build of the sandbox image may take (Modal builds it on first use)."
    ).tag(config=True)
    snapshot_timeout_s = Float(120.0, help="How long a filesystem snapshot may take.").tag(config=True)
    connect_timeout_s = Float(60.0, help="How long to wait for a new sandbox's daemon to listen.").tag(config=True)
    hub_instance = Unicode(
        "", help="Tag value naming this hub on its sandboxes (set by the extension from its data_dir)."
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._launches: dict[str, str] = {}  # sandbox id -> its daemon's launch id
        self._modal: Any = None
        self._app: Any = None
        self._base_image: Any = None  # built once per server
        self._sandboxes: dict[str, Any] = {}
        try:  # now, at server start: importing modal takes most of a second, too long in the event loop
            self._modal = importlib.import_module(self.modal_module)
        except ImportError:
            pass  # said when a sandbox is wanted, so the server still starts

    @property
    def isolation_label(self) -> str:
        return "modal"

    # -- Modal calls --------------------------------------------------------------------------

    @property
    def modal(self) -> Any:
        if self._modal is None:
            try:
                self._modal = importlib.import_module(self.modal_module)
            except ImportError as exc:
                raise SandboxGone(
                    f"the modal backend needs the modal package: pip install 'jupyter_cloudws[modal]' ({exc})"
                ) from None
        return self._modal

    async def _call(self, what: str, call: Awaitable[T], timeout_s: float | None = None) -> T:
        """One Modal API call, bounded, with its failure said in words."""
        exc_mod = self.modal.exception
        limit_s = self.api_timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(call, limit_s)
        except asyncio.TimeoutError:
            raise SandboxGone(f"Modal did not answer ({what}) within {limit_s:g} s: is the Modal API reachable?") from None
        except exc_mod.AuthError as exc:
            problem = credentials_problem(os.environ, str(Path.home()))
            raise SandboxGone(problem or f"Modal refused the credentials ({what}): {exc}") from None
        except exc_mod.NotFoundError:
            raise
        except exc_mod.Error as exc:
            raise SandboxGone(f"Modal {what} failed: {exc}") from None
        except (ConnectionError, OSError) as exc:
            raise SandboxGone(f"Modal {what} failed: {exc}") from None

    def _check_credentials(self) -> None:
        problem = credentials_problem(os.environ, str(Path.home()))
        if problem:
            raise SandboxGone(problem)

    async def _app_handle(self) -> Any:
        if self._app is None:
            self._app = await self._call(
                "looking up the app",
                self.modal.App.lookup.aio(self.app_name, create_if_missing=True, environment_name=self.environment or None),
            )
        return self._app

    async def _sandbox(self, sandbox_id: str) -> Any:
        """The handle of a sandbox by id; NotFoundError when Modal has no such sandbox."""
        if not sandbox_id.startswith("sb-") or "/" in sandbox_id:
            raise SandboxGone(f"not a Modal sandbox id: {sandbox_id!r}")
        sb = self._sandboxes.get(sandbox_id)
        if sb is None:
            sb = await self._call("finding the sandbox", self.modal.Sandbox.from_id.aio(sandbox_id))
            self._sandboxes[sandbox_id] = sb
        return sb

    # -- images -------------------------------------------------------------------------------

    async def _start_image(self, spec: SandboxSpec, app: Any, progress: ProgressFn) -> Any:
        modal = self.modal
        if spec.restore_from:
            # A reference only (no I/O in modal 1.6): an expired id fails at Sandbox.create.
            return modal.Image.from_id(spec.restore_from)
        if self._base_image is not None:
            return self._base_image
        if self.image.startswith("im-"):
            self._base_image = modal.Image.from_id(self.image)
            return self._base_image
        registry = modal.Image.from_registry(self.image, add_python=layout.PYTHON_VERSION) if self.image else None
        image = layout.runtime_image(modal, cli_requirement(), base=registry)
        progress("image", "running", "building the sandbox image if Modal has not yet (the first build takes minutes)")
        built = await self._call("building the image", image.build.aio(app), timeout_s=self.image_build_timeout_s)
        progress("image", "done", f"image {getattr(built, 'object_id', '') or 'ready'}")
        self._base_image = built
        return built

    # -- interface ----------------------------------------------------------------------------

    async def create(self, spec: SandboxSpec, progress: ProgressFn | None = None) -> str:
        report: ProgressFn = progress or (lambda step, state, detail: None)
        self._check_credentials()
        if spec.repo.startswith(("/", "file:", "~")) or "://" not in spec.repo and not spec.repo.startswith("git@"):
            raise SandboxGone(
                f"a Modal sandbox cannot reach {spec.repo!r} on this machine: use the repository's URL (https://...)"
            )
        modal = self.modal
        app = await self._app_handle()
        image = await self._start_image(spec, app, report)
        restore = spec.restore_kind if spec.restore_from else ""
        config = DaemonConfig(
            session_id=spec.session_id, repo=spec.repo, base_branch=spec.base_branch, branch=spec.branch,
            model=spec.model, cli_path="", workdir=layout.WORKDIR, secret_names=list(spec.secret_names),
            restore_kind=restore, prebuild=spec.prebuild, setup_timeout_s=spec.setup_timeout_s,
            git_credentials=spec.git_credentials,
        )  # fmt: skip
        config_data = dataclasses.asdict(config)
        conversation = await asyncio.to_thread(_pack_conversation, spec.conversation_dir) if not restore == "snapshot" else None
        # Each sandbox's daemon gets its own state dir and socket: one from a snapshot is stale.
        launch = uuid.uuid4().hex[:12]
        command = ["python", "-m", "cloudws_sandbox", "serve", "--state-dir", f"{layout.STATE_PARENT}/{launch}",
                   "--socket", layout.socket_path(launch), "--config-json", json.dumps(config_data)]  # fmt: skip
        if conversation:
            command += ["--wait-for", layout.CONVERSATION_READY]
        secrets = [modal.Secret.from_dict(dict(spec.env))] if spec.env else []
        secrets += await self._named_secrets()
        tags = {TAG_SESSION: tag_value(spec.session_id), TAG_HUB: tag_value(self.hub_instance or "default"),
                TAG_LAUNCH: launch}  # fmt: skip
        if spec.owner:
            tags[TAG_OWNER] = tag_value(spec.owner)
        try:
            sb = await self._call(
                "creating the sandbox",
                modal.Sandbox.create.aio(
                    *command, app=app, image=image, secrets=secrets, env=dict(layout.IMAGE_ENV),
                    timeout=self.timeout_s, workdir=layout.ROOT, cpu=self.cpu, memory=self.memory_mib,
                    region=self.region or None, tags=tags,
                ),  # fmt: skip
            )
        except modal.exception.NotFoundError as exc:
            # The app and the named secrets were found just before: what is missing is the image.
            if spec.restore_from:
                raise SnapshotGone(f"Modal has no image {spec.restore_from} (expired or deleted): {exc}") from None
            raise SandboxGone(f"Modal could not create the sandbox: {exc}") from None
        self._launches[sb.object_id] = launch
        sandbox_id = sb.object_id
        self._sandboxes[sandbox_id] = sb
        if conversation:
            try:
                await self._copy_in(sb, conversation)
            except Exception:
                await self.terminate(sandbox_id)
                raise
        self.log.info("started Modal sandbox %s for session %s", sandbox_id, spec.session_id)
        return sandbox_id

    async def _named_secrets(self) -> list[Any]:
        """The configured Modal secrets, looked up now: a missing one is named in the error, and
        never taken for a missing image at ``Sandbox.create``."""
        secrets = []
        for name in self.secrets:
            secret = self.modal.Secret.from_name(name, environment_name=self.environment or None)
            try:
                await self._call(f"finding the secret {name!r}", secret.hydrate.aio())
            except self.modal.exception.NotFoundError as exc:
                raise SandboxGone(f"Modal has no secret {name!r} (ModalBackend.secrets): {exc}") from None
            secrets.append(secret)
        return secrets

    async def _socket(self, sandbox_id: str, sb: Any) -> str:
        """The path of the sandbox's bridge socket, from its launch tag."""
        launch = self._launches.get(sandbox_id)
        if launch is None:
            tags = await self._call("reading the sandbox's tags", sb.get_tags.aio())
            launch = str(tags.get(TAG_LAUNCH) or "")
            if not launch.isalnum():
                raise SandboxGone(f"sandbox {sandbox_id} has no {TAG_LAUNCH} tag: not one this hub started")
            self._launches[sandbox_id] = launch
        return layout.socket_path(launch)

    async def _copy_in(self, sb: Any, archive: bytes) -> None:
        """Unpack the saved conversation into the sandbox, then let its daemon start."""
        script = (f"mkdir -p {layout.CONVERSATION_DIR} && tar -xzf - -C {layout.CONVERSATION_DIR} "
                  f"&& touch {layout.CONVERSATION_READY}")  # fmt: skip
        # The first exec waits for the sandbox to be scheduled: bounded like a start, not an API call.
        proc = await self._call("copying the conversation in (the sandbox may still be starting)",
                                sb.exec.aio("sh", "-c", script, text=False), self.connect_timeout_s)  # fmt: skip
        for start in range(0, len(archive), STDIN_CHUNK_BYTES):
            proc.stdin.write(archive[start : start + STDIN_CHUNK_BYTES])
            await self._call("copying the conversation in", proc.stdin.drain.aio())
        proc.stdin.write_eof()
        await self._call("copying the conversation in", proc.stdin.drain.aio())
        code = await self._call("copying the conversation in", proc.wait.aio())
        if code != 0:
            err = await self._call("copying the conversation in", proc.stderr.read.aio())
            raise SandboxGone(f"could not copy the saved conversation in (exit {code}): {_text(err)[-300:]}")

    async def liveness(self, sandbox_id: str) -> Liveness:
        try:
            sb = await self._sandbox(sandbox_id)
            code = await self._call("polling the sandbox", sb.poll.aio())
        except self.modal.exception.NotFoundError:
            return Liveness.DEAD
        except SandboxGone as exc:
            self.log.warning("could not tell whether Modal sandbox %s is alive: %s", sandbox_id, exc)
            return Liveness.UNKNOWN
        return Liveness.ALIVE if code is None else Liveness.DEAD

    async def is_alive(self, sandbox_id: str) -> bool:
        return await self.liveness(sandbox_id) is Liveness.ALIVE

    async def connect(self, sandbox_id: str) -> BridgeStream:
        try:
            sb = await self._sandbox(sandbox_id)
        except self.modal.exception.NotFoundError:
            raise SandboxGone(f"Modal has no sandbox {sandbox_id}") from None
        socket = await self._socket(sandbox_id, sb)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout_s
        while True:  # a new sandbox's daemon needs a moment (and maybe a copied-in conversation)
            if await self._call("polling the sandbox", sb.poll.aio()) is not None:
                raise SandboxGone(await self.exit_reason(sandbox_id))
            # The first exec waits for the sandbox to be scheduled: bounded like a start.
            probe = await self._call("checking the bridge socket (the sandbox may still be starting)",
                                     sb.exec.aio("test", "-S", socket), self.connect_timeout_s)  # fmt: skip
            if await self._call("checking the bridge socket", probe.wait.aio()) == 0:
                break
            if loop.time() > deadline:
                raise SandboxGone(f"the sandbox daemon did not listen within {self.connect_timeout_s:g} s")
            await asyncio.sleep(0.2)
        # Bytes, not text lines: modal would hold a line of any length whole, and decode strictly.
        proc = await self._call(
            "opening the bridge", sb.exec.aio("python", "-m", "cloudws_sandbox", "attach", "--socket", socket, text=False)
        )
        return ExecStream(proc, self)

    async def exec(self, sandbox_id: str, argv: list[str], timeout_s: float = 60.0) -> ExecResult:
        sb = await self._sandbox(sandbox_id)
        proc = await self._call("running a command", sb.exec.aio(*argv, timeout=max(1, int(timeout_s)), workdir=layout.WORKDIR))
        out, err = await asyncio.gather(
            self._call("reading output", proc.stdout.read.aio(), timeout_s + self.api_timeout_s),
            self._call("reading output", proc.stderr.read.aio(), timeout_s + self.api_timeout_s),
        )
        code = await self._call("running a command", proc.wait.aio())
        return ExecResult(code or 0, _text(out), _text(err))

    async def terminate(self, sandbox_id: str) -> None:
        try:
            sb = await self._sandbox(sandbox_id)
            await self._call("ending the sandbox", sb.terminate.aio())
        except self.modal.exception.NotFoundError:
            pass  # gone already
        self._sandboxes.pop(sandbox_id, None)

    async def exit_reason(self, sandbox_id: str) -> str:
        try:
            sb = await self._sandbox(sandbox_id)
            code = await self._call("polling the sandbox", sb.poll.aio())
            tail = (await self._call("reading the sandbox's log", _tail(sb.stderr, LOG_TAIL_BYTES))).strip().splitlines()
        except (SandboxGone, self.modal.exception.NotFoundError) as exc:
            return f"the Modal sandbox ended ({exc})"
        reason = "the Modal sandbox ended" + (f" with code {code}" if code is not None else "")
        if code == EXIT_LIFETIME:
            reason += f" (it reached its lifetime, ModalBackend.timeout_s = {self.timeout_s} s)"
        elif code == EXIT_TERMINATED:
            reason += " (it was terminated)"
        tail = [line[:MAX_REASON_LINE_CHARS] for line in tail[-LOG_TAIL_LINES:]]
        return reason + (": " + " | ".join(tail) if tail else "")

    async def snapshot(self, sandbox_id: str) -> str:
        sb = await self._sandbox(sandbox_id)
        image = await self._call("snapshotting the sandbox", sb.snapshot_filesystem.aio(timeout=int(self.snapshot_timeout_s)),
                                 self.snapshot_timeout_s + self.api_timeout_s)  # fmt: skip
        return str(image.object_id)

    async def save_conversation(self, sandbox_id: str, conversation_dir: str) -> None:
        """Copy the agent's conversation out, so a sandbox started without a snapshot resumes it."""
        sb = await self._sandbox(sandbox_id)
        # The agent may have made the directory a link (to / say): tar must not follow it.
        script = f"test -d {layout.CONVERSATION_DIR} && test ! -L {layout.CONVERSATION_DIR} && tar -czf - -C {layout.CONVERSATION_DIR} ."
        proc = await self._call("copying the conversation out", sb.exec.aio("sh", "-c", script, text=False))
        archive = await self._call("copying the conversation out", _read_capped(proc.stdout, MAX_CONVERSATION_BYTES),
                                   self.snapshot_timeout_s)  # fmt: skip
        if await self._call("copying the conversation out", proc.wait.aio()) != 0:
            raise SandboxGone("could not read the conversation out of the sandbox (missing, a link, or unreadable)")
        await asyncio.to_thread(_unpack_conversation, archive, conversation_dir)

    async def orphans(self, claimed: set[str]) -> list[str]:
        self._check_credentials()
        app = await self._app_handle()
        found: list[str] = []

        async def collect() -> None:
            tags = {TAG_HUB: tag_value(self.hub_instance or "default")}
            async for sb in self.modal.Sandbox.list.aio(app_id=app.app_id, tags=tags):
                # One this server started or reached is never an orphan, even if no session
                # has stored its id yet (a spawn under way).
                if sb.object_id not in claimed and sb.object_id not in self._sandboxes:
                    found.append(sb.object_id)

        await self._call("listing sandboxes", collect())
        return found


class ExecStream:
    """The bridge over an exec'd ``attach`` process: its stdout cut into lines here (each bounded),
    its stdin drained after each write (Modal only sends stdin on a drain). Writes are serialized:
    Modal's stdin writer keeps one buffer and offset, which two overlapping drains would corrupt."""

    def __init__(self, proc: Any, backend: ModalBackend) -> None:
        self.proc = proc
        self.backend = backend
        self._chunks = proc.stdout.__aiter__()
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        self._write_lock = asyncio.Lock()

    async def _more(self) -> bool:
        """Read one more chunk into the buffer; False at the end of the stream."""
        if self._eof:
            return False
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._eof = True
            return False
        except Exception as exc:  # a dropped exec: the runner reattaches
            raise ConnectionError(f"the Modal exec stream broke: {exc}") from exc
        self._buffer += chunk.encode() if isinstance(chunk, str) else chunk
        return True

    async def readline(self) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                if len(line) > BRIDGE_MAX_LINE_BYTES:
                    raise LineTooLong(len(line), BRIDGE_MAX_LINE_BYTES)
                return line
            if len(self._buffer) > BRIDGE_MAX_LINE_BYTES:
                return await self._drop_line()
            if not await self._more():
                line, self._buffer = bytes(self._buffer), bytearray()
                return line

    async def _drop_line(self) -> bytes:
        """Read past an overlong line without holding it, then say so."""
        dropped = 0
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                dropped += end + 1
                del self._buffer[: end + 1]
                raise LineTooLong(dropped, BRIDGE_MAX_LINE_BYTES)
            dropped += len(self._buffer)
            self._buffer.clear()
            if not await self._more():
                raise LineTooLong(dropped, BRIDGE_MAX_LINE_BYTES)

    async def write(self, data: bytes) -> None:
        async with self._write_lock:
            if self._closed:
                raise ConnectionError("the bridge is closed")
            try:
                for start in range(0, len(data), STDIN_CHUNK_BYTES):
                    self.proc.stdin.write(data[start : start + STDIN_CHUNK_BYTES])
                    await self.backend._call("writing to the bridge", self.proc.stdin.drain.aio())
            except (SandboxGone, ValueError, BufferError) as exc:
                raise ConnectionError(f"the bridge's stdin is closed: {exc}") from None
            except self.backend.modal.exception.Error as exc:  # e.g. NotFoundError: the sandbox is gone
                raise ConnectionError(f"the bridge broke: {exc}") from None

    async def close(self) -> None:
        async with self._write_lock:
            if self._closed:
                return
            self._closed = True
            try:  # attach ends when its input ends, and the daemon lets the connection go
                self.proc.stdin.write_eof()
                await self.backend._call("closing the bridge", self.proc.stdin.drain.aio(), 5.0)
            except Exception:
                pass
        closer = getattr(self._chunks, "aclose", None)
        if closer is not None:
            try:
                await asyncio.wait_for(closer(), 5.0)
            except Exception:
                pass


async def _read_capped(stream: Any, max_bytes: int) -> bytes:
    """All of a byte stream, refused past ``max_bytes``."""
    data = bytearray()
    async for chunk in stream:
        data += chunk.encode() if isinstance(chunk, str) else chunk
        if len(data) > max_bytes:
            raise SandboxGone(f"more than {max_bytes} bytes came out of the sandbox; refused")
    return bytes(data)


async def _tail(stream: Any, keep_bytes: int) -> str:
    """The end of a stream (a dead sandbox's log), never more than ``keep_bytes`` held."""
    tail = bytearray()
    async for chunk in stream:
        tail += chunk.encode() if isinstance(chunk, str) else chunk
        del tail[:-keep_bytes]
    return tail.decode(errors="replace")


def _text(data: str | bytes) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _pack_conversation(conversation_dir: str | None) -> bytes | None:
    """The session's saved conversation as a gzipped tar, or None when there is none."""
    if not conversation_dir or not os.path.isdir(conversation_dir):
        return None
    path = Path(conversation_dir)
    _scrub(path)  # what a hostile agent left for the next sandbox's Claude Code to obey
    if not any(path.iterdir()):
        return None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for child in sorted(path.iterdir()):
            tar.add(child, arcname=child.name, filter=_regular_only)
    return buffer.getvalue()


def _regular_only(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return info if info.isfile() or info.isdir() else None


def _unpack_conversation(archive: bytes, conversation_dir: str) -> None:
    """Replace the saved conversation with ``archive`` (from the sandbox: untrusted), taking only
    regular files and directories inside the directory."""
    target = Path(conversation_dir)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if (m.isfile() or m.isdir()) and _inside(m.name)]
        if len(members) > MAX_UNPACKED_MEMBERS or sum(m.size for m in members) > MAX_UNPACKED_BYTES:
            raise SandboxGone("the conversation copied out of the sandbox is too large; the last saved one is kept")
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12+: also drops odd modes and owners
            tar.extractall(target, members=members, filter="data")
        else:
            tar.extractall(target, members=members)
    _scrub(target)


def _inside(name: str) -> bool:
    parts = Path(name).parts
    return not Path(name).is_absolute() and ".." not in parts


HUB_ID_FILE = "hub-id"


def hub_instance_id(data_dir: str) -> str:
    """The tag value naming the hub that keeps its data in ``data_dir``: random, made once and kept
    there. Never derived from the path, which users of one JupyterHub (and one Modal workspace)
    share: one hub's orphan sweep would end the others' sandboxes."""
    path = Path(data_dir) / HUB_ID_FILE
    try:
        value = path.read_text().strip()
        if value.startswith("hub-") and value[4:].isalnum():
            return value
    except FileNotFoundError:
        pass
    value = "hub-" + uuid.uuid4().hex[:20]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    return value
