"""Fake ``modal.Sandbox``: a real process tree per sandbox, kept by a detached supervisor.

Semantics follow modal 1.6.4 (``modal/sandbox/_sandbox.py``, ``_common.py``, ``_impl_v1.py``):
``poll`` gives None while running, else the return code (124 after the lifetime ``timeout``, 137
after ``terminate``); ``wait`` raises ``SandboxTimeoutError`` / ``SandboxTerminatedError``;
``list`` yields running sandboxes only (``include_finished=False``), newest first, those having
at least the given tags; ``exec`` on a finished sandbox raises ``ConflictError``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

import modal
from modal.exception import (
    AlreadyExistsError,
    ClientClosed,
    ConflictError,
    ExecutionError,
    InvalidError,
    NotFoundError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)
from modal.stream_type import StreamType

from . import _state, supervisor
from ._bridge import api
from ._objects import App, Image, Secret, load_image_record
from ._process import ContainerProcess, FileStreamReader

DEFAULT_COMMAND = ["sleep", "infinity"]  # a sandbox without a command lives until its timeout
MAX_TIMEOUT_S = 24 * 3600
_ENV_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def base_env() -> dict[str, str]:
    """The environment every fake sandbox starts from: the host's Python is the image's."""
    python_dir = os.path.dirname(sys.executable)
    return {"PATH": f"{python_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def _sandboxes_dir() -> Path:
    path = _state.root() / "sandboxes"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _supervisor_alive(sandbox_dir: Path) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(supervisor.control_address(sandbox_dir))
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    finally:
        sock.close()


def sandbox_result(sandbox_dir: Path) -> dict[str, Any] | None:
    """How the sandbox ended, or None while it runs (or is still starting)."""
    result = _state.read_json(sandbox_dir / "result.json")
    if result is not None:
        return result
    if not (sandbox_dir / "runtime.json").exists() or _supervisor_alive(sandbox_dir):
        return None
    result = _state.read_json(sandbox_dir / "result.json")
    if result is None:
        # The supervisor was killed without a word; bwrap's --die-with-parent took the sandbox.
        result = {"status": "terminated", "exitcode": 137, "exception": "the fake sandbox's supervisor is gone",
                  "finished_at": time.time()}  # fmt: skip
        _state.write_json(sandbox_dir / "result.json", result)
    return result


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy a live tree: symlinks kept, sockets and other special files skipped, vanished files ignored."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        target = dst / entry.name
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(entry.path), target)
            elif stat.S_ISDIR(mode):
                _copy_tree(Path(entry.path), target)
                shutil.copystat(entry.path, target)
            elif stat.S_ISREG(mode):
                shutil.copy2(entry.path, target)
        except FileNotFoundError:
            continue


def _copy_filtered(src: Path, dst: Path, ignore: Any) -> None:
    """Copy a local dir as a mount would upload it, leaving out what ``ignore`` matches."""
    from modal.file_pattern_matcher import _ignore_fn

    matches = _ignore_fn(ignore or ())
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = Path(dirpath).relative_to(src)
        dirnames[:] = [d for d in dirnames if not matches(rel_dir / d)]
        (dst / rel_dir).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            if not matches(rel_dir / name):
                shutil.copy2(Path(dirpath) / name, dst / rel_dir / name, follow_symlinks=True)


def _effective_layers(image: Image) -> tuple[list[dict[str, Any]], Path | None, int]:
    """The layers that shape a sandbox made from ``image``, the snapshot tree it starts from, and
    how many of the layers that tree already holds."""
    if image._object_id and not image._layers:
        record = load_image_record(image._object_id)
        if record["kind"] == "snapshot":
            fs = _state.root() / "images" / image._object_id / "fs"
            return list(record["layers"]), fs, len(record["layers"])
        return list(record["layers"]), None, 0
    if image._layers and image._layers[0]["op"] == "from_id":
        base, fs, held = _effective_layers(Image([], object_id=image._layers[0]["image_id"]))
        return base + image._layers[1:], fs, held
    return list(image._layers), None, 0


def _add_files(layers: list[dict[str, Any]], held: int, sandbox_dir: Path) -> tuple[list[list[str]], dict[str, str]]:
    """Lay out the image's local files and gather its environment.

    Files bound for a writable path are copied into the sandbox's tree, as an image layer holds
    them: writable, and kept by a snapshot (so a snapshot's first ``held`` layers are in it
    already). Files elsewhere are copied aside and bound read-only, since the fake cannot write
    there; a snapshot does not keep those, so they are laid out again from the host.
    """
    mounts: list[list[str]] = []
    env: dict[str, str] = {}
    fs = sandbox_dir / "fs"
    for n, layer in enumerate(layers):
        if layer["op"] == "env":
            env.update(layer["vars"])
        if layer["op"] not in ("add_local_dir", "add_local_file"):
            continue
        remote = str(layer["remote_path"])
        in_tree = supervisor.writable_root_of(remote) is not None
        if in_tree and n < held:
            continue
        target = fs / remote.strip("/") if in_tree else sandbox_dir / "mounts" / str(n)
        src = Path(layer["local_path"])
        if layer["op"] == "add_local_dir":
            _copy_filtered(src, target, layer.get("ignore"))
        elif in_tree:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
        else:
            target.mkdir(parents=True)
            target = target / src.name
            shutil.copy2(src, target)
        if not in_tree:
            mounts.append([str(target), remote])
    return mounts, env


def _check_env(env: dict[str, Any] | None, what: str) -> dict[str, str]:
    out = {k: v for k, v in (env or {}).items() if v is not None}
    for key, value in out.items():
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            raise InvalidError(f"{what} key name {key!r} is invalid for environment variables.")
        if not isinstance(value, str):
            raise InvalidError(f"{what} value for {key!r} must be a string, got {type(value).__name__}")
    return out


def _check_args(args: tuple[Any, ...]) -> list[str]:
    if not all(isinstance(arg, str) for arg in args):
        raise InvalidError("All entrypoint arguments must be strings")
    return list(args)


def _check_tags(tags: Any) -> dict[str, str]:
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise InvalidError(f"tags must be a dict of strings, got {tags!r}")
    return dict(tags)


async def _supervisor_call(sandbox_dir: Path, command: str) -> bool:
    """Send one line to the supervisor and wait until it hangs up; False if it is already gone."""
    try:
        reader, writer = await asyncio.open_unix_connection(supervisor.control_address(sandbox_dir))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    try:
        writer.write(command.encode() + b"\n")
        await writer.drain()
        await reader.read()
    except ConnectionError:
        pass
    finally:
        writer.close()
    return True


class Sandbox:
    """``modal.Sandbox``; handles made in any process refer to the same sandbox on disk."""

    def __init__(self, sandbox_id: str, *, result: dict[str, Any] | None = None) -> None:
        self._object_id = sandbox_id
        self._dir = _sandboxes_dir() / sandbox_id
        self._result = result
        self._attached = True
        self._stdout = FileStreamReader(self, "stdout.log")
        self._stderr = FileStreamReader(self, "stderr.log")

    def __repr__(self) -> str:
        return f"Sandbox({self._object_id})"

    @property
    def object_id(self) -> str:
        return self._object_id

    @property
    def returncode(self) -> int | None:
        return None if self._result is None else supervisor.returncode_of(self._result)

    @property
    def stdout(self) -> FileStreamReader:
        self._ensure_attached()
        return self._stdout

    @property
    def stderr(self) -> FileStreamReader:
        self._ensure_attached()
        return self._stderr

    @property
    def stdin(self) -> Any:
        raise NotImplementedError("the fake modal does not feed a sandbox's main command on stdin; use exec")

    def _ensure_attached(self) -> None:
        if not self._attached:
            raise ClientClosed("Unable to perform operation on a detached sandbox")

    def _spec(self) -> dict[str, Any]:
        return _state.read_json(self._dir / "spec.json")

    # Creating and finding sandboxes.
    @api(lambda: modal.Sandbox.create)
    async def create(cls, a: dict[str, Any]) -> Sandbox:
        app = a["app"]
        if app is None:
            raise InvalidError(
                "Sandboxes require an App when created outside of a Modal container.\n\n"
                "Run an ephemeral App (`with app.run(): ...`), or reference a deployed App using `App.lookup`"
            )
        if not isinstance(app, App):
            raise TypeError(f"app must be an App from the fake modal's App.lookup, got {app!r}")
        if a["timeout"] is None:
            raise InvalidError("`timeout=None` is only supported for experimental persistent Sandboxes.")
        if a["timeout"] > MAX_TIMEOUT_S:
            raise InvalidError(f"timeout must be at most {MAX_TIMEOUT_S} seconds (24 hours)")
        if a["workdir"] is not None and not a["workdir"].startswith("/"):
            raise InvalidError(f"workdir must be an absolute path, got: {a['workdir']}")
        if a["pty"] or a["pty_info"] is not None:
            raise NotImplementedError("the fake modal has no PTY")
        _warn_deprecated_create_arguments(a)
        argv = _check_args(a["args"]) or DEFAULT_COMMAND
        tags = _check_tags(a["tags"] or {})
        env_arg = _check_env(a["env"], "env")
        await _state.network_call()

        image = a["image"] if a["image"] is not None else Image.debian_slim()
        if not isinstance(image, Image):
            raise TypeError(f"image must be an Image from the fake modal, got {image!r}")
        image._build()
        layers, snapshot_fs, held = _effective_layers(image)
        env = base_env()
        secrets = list(a["secrets"] or [])
        for secret in secrets:
            if not isinstance(secret, Secret):
                raise TypeError(f"secrets must be Secrets from the fake modal, got {secret!r}")
        image_env_and_secrets = [s._resolve() for s in secrets]
        if a["name"] is not None:
            async for other in Sandbox._list_running(app.app_id, None):
                if other._spec().get("name") == a["name"]:
                    raise AlreadyExistsError(f"Sandbox with name '{a['name']}' already exists in the App")

        sandbox_id = _state.new_id("sb")
        sandbox_dir = _sandboxes_dir() / sandbox_id
        sandbox_dir.mkdir()
        fs = sandbox_dir / "fs"
        if snapshot_fs is not None:
            _copy_tree(snapshot_fs, fs)
        for writable in supervisor.WRITABLE_PATHS:
            (fs / writable.strip("/")).mkdir(parents=True, exist_ok=True)
        mounts, image_env = _add_files(layers, held if snapshot_fs is not None else 0, sandbox_dir)
        env.update(image_env)
        for values in image_env_and_secrets:
            env.update(values)
        env.update(env_arg)
        workdir = a["workdir"] or "/"
        writable = supervisor.writable_root_of(workdir)
        if writable:
            (fs / workdir.strip("/")).mkdir(parents=True, exist_ok=True)
        spec = {
            "id": sandbox_id, "app_id": app.app_id, "name": a["name"], "argv": argv, "workdir": workdir,
            "timeout": a["timeout"], "idle_timeout": a["idle_timeout"], "mounts": mounts,
            "image_id": image.object_id, "layers": layers, "created_at": time.time(),
            "cpu": a["cpu"], "memory": a["memory"], "region": a["region"],
        }  # fmt: skip
        _state.write_json(sandbox_dir / "spec.json", spec)
        _state.write_json(sandbox_dir / "env.json", env, private=True)
        _state.write_json(sandbox_dir / "tags.json", tags)
        await _launch(sandbox_dir)
        return Sandbox(sandbox_id)

    @api(lambda: modal.Sandbox.from_id)
    async def from_id(cls, a: dict[str, Any]) -> Sandbox:
        await _state.network_call()
        sandbox_id = a["sandbox_id"]
        if not isinstance(sandbox_id, str) or "/" in sandbox_id or not sandbox_id.startswith("sb-"):
            raise InvalidError(f"Invalid sandbox id: {sandbox_id!r}")
        sandbox_dir = _sandboxes_dir() / sandbox_id
        if not (sandbox_dir / "spec.json").exists():
            raise NotFoundError(f"Sandbox {sandbox_id} not found")
        return Sandbox(sandbox_id, result=sandbox_result(sandbox_dir))

    @api(lambda: modal.Sandbox.list, generator=True)
    async def list(cls, a: dict[str, Any]):
        await _state.network_call()
        tags = _check_tags(a["tags"]) if a["tags"] else None
        async for sandbox in Sandbox._list_running(a["app_id"], tags):
            yield sandbox

    @staticmethod
    async def _list_running(app_id: str | None, tags: dict[str, str] | None):
        found = []
        for sandbox_dir in _sandboxes_dir().iterdir():
            spec = _state.read_json(sandbox_dir / "spec.json")
            if spec is None or (app_id and spec["app_id"] != app_id):
                continue
            if not (sandbox_dir / "runtime.json").exists() or sandbox_result(sandbox_dir) is not None:
                continue
            current = _state.read_json(sandbox_dir / "tags.json", {})
            if tags and any(current.get(k) != v for k, v in tags.items()):
                continue
            found.append((spec["created_at"], spec["id"]))
        for _, sandbox_id in sorted(found, reverse=True):
            yield Sandbox(sandbox_id)

    # Operations on one sandbox.
    @api(lambda: modal.Sandbox.exec)
    async def exec(self, a: dict[str, Any]) -> ContainerProcess:
        self._ensure_attached()
        if a["pty"] or a["pty_info"] is not None or a["_pty_info"] is not None:
            raise NotImplementedError("the fake modal has no PTY")
        if a["workdir"] is not None and not a["workdir"].startswith("/"):
            raise InvalidError(f"workdir must be an absolute path, got: {a['workdir']}")
        argv = _check_args(a["args"])
        if a["bufsize"] == 1 and not a["text"]:
            raise ValueError("line-buffering is only supported when text=True")
        env_arg = _check_env(a["env"], "env")
        await _state.network_call()
        secret_values = [s._resolve() for s in a["secrets"] or []]
        result = sandbox_result(self._dir)
        if result is not None:
            self._result = result
            raise ConflictError(result.get("exception") or "Sandbox already finished")
        try:
            holder_reader, holder = await asyncio.open_unix_connection(supervisor.control_address(self._dir))
        except (ConnectionRefusedError, FileNotFoundError):
            self._result = sandbox_result(self._dir)
            raise ConflictError("Sandbox already finished") from None
        holder.write(b"exec\n")
        runtime = _state.read_json(self._dir / "runtime.json")
        if supervisor.pid_namespace_of(runtime["ns_pid"]) != runtime["pid_namespace"]:
            holder.close()
            raise ConflictError("Sandbox already finished")
        env = dict(_state.read_json(self._dir / "env.json"))
        for values in secret_values:
            env.update(values)
        env.update(env_arg)
        workdir = a["workdir"] or self._spec()["workdir"]
        streams = {StreamType.PIPE: asyncio.subprocess.PIPE, StreamType.DEVNULL: asyncio.subprocess.DEVNULL,
                   StreamType.STDOUT: None}  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *supervisor.exec_argv(runtime["ns_pid"], workdir, argv),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=streams[a["stdout"]],
            stderr=streams[a["stderr"]],
            # Its own process group, so a timeout kills nsenter and the command it forked.
            start_new_session=True,
        )
        return ContainerProcess(proc, holder, text=a["text"], by_line=a["bufsize"] == 1, timeout_s=a["timeout"])

    @api(lambda: modal.Sandbox.terminate)
    async def terminate(self, a: dict[str, Any]) -> int | None:
        self._ensure_attached()
        await _state.network_call()
        await _supervisor_call(self._dir, "terminate")
        if a["wait"]:
            await self._wait(raise_on_termination=False)
            return self.returncode
        return None

    @api(lambda: modal.Sandbox.poll)
    async def poll(self, a: dict[str, Any]) -> int | None:
        self._ensure_attached()
        await _state.network_call()
        self._result = sandbox_result(self._dir)
        return self.returncode

    @api(lambda: modal.Sandbox.wait)
    async def wait(self, a: dict[str, Any]) -> None:
        await _state.network_call()
        await self._wait(raise_on_termination=a["raise_on_termination"])

    async def _wait(self, *, raise_on_termination: bool) -> None:
        await _supervisor_call(self._dir, "wait")
        result = sandbox_result(self._dir)
        assert result is not None, "the supervisor hung up before recording how the sandbox ended"
        self._result = result
        if result["status"] == "timeout":
            raise SandboxTimeoutError()
        if result["status"] == "terminated" and raise_on_termination:
            raise SandboxTerminatedError()

    @api(lambda: modal.Sandbox.snapshot_filesystem)
    async def snapshot_filesystem(self, a: dict[str, Any]) -> Image:
        self._ensure_attached()
        ttl = a["ttl"]
        if ttl is not None and ttl <= 0:
            raise InvalidError("ttl must be positive, or None to disable expiry")
        await _state.network_call()
        if sandbox_result(self._dir) is not None:
            raise ConflictError("Sandbox already finished")
        image_id = _state.new_id("im")
        image_dir = _state.root() / "images" / image_id
        _copy_tree(self._dir / "fs", image_dir / "fs")
        record = {
            "id": image_id, "kind": "snapshot", "layers": self._spec()["layers"], "from_sandbox": self._object_id,
            "built_at": time.time(), "expires_at": None if ttl is None else time.time() + ttl,
        }  # fmt: skip
        _state.write_json(image_dir / "image.json", record)
        return Image([], object_id=image_id)

    @api(lambda: modal.Sandbox.set_tags)
    async def set_tags(self, a: dict[str, Any]) -> None:
        self._ensure_attached()
        tags = _check_tags(a["tags"])
        await _state.network_call()
        _state.write_json(self._dir / "tags.json", tags)

    @api(lambda: modal.Sandbox.get_tags)
    async def get_tags(self, a: dict[str, Any]) -> dict[str, str]:
        self._ensure_attached()
        await _state.network_call()
        return _state.read_json(self._dir / "tags.json", {})

    @api(lambda: modal.Sandbox.detach, record=False)
    async def detach(self, a: dict[str, Any]) -> None:
        self._attached = False


def _warn_deprecated_create_arguments(a: dict[str, Any]) -> None:
    """The deprecation warnings real modal 1.6.4 gives in ``Sandbox.create``."""
    from modal._utils.deprecation import deprecation_warning

    if a["environment_name"] is not None:
        deprecation_warning(
            (2025, 7, 16),
            "Passing `environment_name` to `Sandbox.create` is deprecated and will be removed in a future release. "
            "A sandbox's environment is determined by the app it is associated with.",
        )
    if a["cidr_allowlist"] is not None:
        deprecation_warning(
            (2026, 5, 11),
            "The `cidr_allowlist` parameter has been renamed to `outbound_cidr_allowlist`. "
            "`cidr_allowlist` will be removed in a future release.",
        )


async def _launch(sandbox_dir: Path) -> None:
    """Start the supervisor detached and wait until the sandbox runs (or failed to start)."""
    log = open(sandbox_dir / "supervisor.log", "ab")
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, supervisor.__file__, str(sandbox_dir),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
            start_new_session=True,
        )  # fmt: skip
    finally:
        log.close()
    try:
        line = await proc.stdout.readline()
    except BaseException:
        # The caller gave up (cancelled): end the sandbox it will never hear of, once it runs.
        asyncio.get_running_loop().create_task(_terminate_when_started(proc, sandbox_dir))
        raise
    await proc.wait()
    if line.strip() != b"ready":
        result = _state.read_json(sandbox_dir / "result.json") or {}
        log_text = (sandbox_dir / "supervisor.log").read_text(errors="replace")[-2000:]
        raise ExecutionError(result.get("exception") or f"the fake sandbox's supervisor failed: {log_text}")


async def _terminate_when_started(proc: asyncio.subprocess.Process, sandbox_dir: Path) -> None:
    await proc.stdout.read()
    await proc.wait()
    await _supervisor_call(sandbox_dir, "terminate")
