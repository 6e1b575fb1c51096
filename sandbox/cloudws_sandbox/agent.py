"""One long-lived Claude Code process, driven through its stream-json stdin/stdout.

Follow-up prompts go to the same process, so the conversation keeps its context; if the
process dies, the next start passes ``--resume`` with the agent session id it reported.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from .protocol import dumps

from .procs import MARKER, kill_marked

log = logging.getLogger("cloudws_sandbox.agent")

STDOUT_LIMIT_BYTES = 64 * 1024 * 1024  # one line can hold a whole file read by a tool


def kill_tools() -> None:
    """Kill the tool processes a killed agent left behind (each Bash tool has its own session,
    so killing the agent's group misses them); they are the sandbox's marked processes other
    than the daemon itself."""
    marker = os.environ.get(MARKER)
    if marker:
        kill_marked(marker)


class AgentExited(RuntimeError):
    pass


class ClaudeAgent:
    def __init__(
        self, cli_path: str, cwd: str, env: dict[str, str], *, model: str | None = None,
        resume_session_id: str | None = None, permission_mode: str = "bypassPermissions",
        extra_args: list[str] | None = None,
    ) -> None:  # fmt: skip
        self.cli_path = cli_path
        self.cwd = cwd
        self.env = env
        self.model = model
        self.resume_session_id = resume_session_id
        self.permission_mode = permission_mode
        self.extra_args = extra_args or []
        self._proc: asyncio.subprocess.Process | None = None
        self._request_counter = 0
        # A resumed CLI that cannot load its conversation ends before its first ``system init``
        # line, saying why on stderr: how the daemon tells a failed resume from a failed turn.
        self.saw_init = False
        self.stderr_tail: deque[str] = deque(maxlen=5)
        self._stderr_task: asyncio.Task[None] | None = None

    def argv(self) -> list[str]:
        argv = [
            self.cli_path,
            "--input-format", "stream-json",
            "--output-format", "stream-json",
            "--verbose",
            "--include-partial-messages",
            "--permission-mode", self.permission_mode,
        ]  # fmt: skip
        if self.model:
            argv += ["--model", self.model]
        if self.resume_session_id:
            argv += ["--resume", self.resume_session_id]
        return argv + self.extra_args

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        env = dict(self.env)
        if self.permission_mode == "bypassPermissions":
            env["IS_SANDBOX"] = "1"  # the CLI refuses bypass mode as root without exactly this
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv(), cwd=self.cwd, env=env, limit=STDOUT_LIMIT_BYTES,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # so an interrupt or kill reaches the whole tool process group
        )  # fmt: skip
        self._stderr_task = asyncio.get_running_loop().create_task(self._drain_stderr(self._proc))
        log.info("claude started (pid %s): %s", self._proc.pid, " ".join(self.argv()[1:]))

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            text = line.decode(errors="replace").rstrip()
            self.stderr_tail.append(text)
            log.warning("claude stderr: %s", text)

    async def exit_detail(self, timeout_s: float = 5.0) -> str:
        """Once the process has ended: its exit code and the last lines it wrote on stderr."""
        if self._proc is not None:
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._proc.wait())]
            if self._stderr_task is not None:
                waits.append(self._stderr_task)
            await asyncio.wait(waits, timeout=timeout_s)  # unlike wait_for, cancels nothing
        said = " | ".join(line for line in self.stderr_tail if line.strip())
        return f"Claude Code exited with code {self.returncode}" + (f": {said}" if said else "")

    async def _write(self, message: dict[str, Any]) -> None:
        if not self.alive:
            raise AgentExited("the Claude Code process is not running")
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write((dumps(message) + "\n").encode())
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise AgentExited(f"the Claude Code process closed its input: {exc}") from None

    async def send_prompt(self, text: str) -> None:
        await self._write({"type": "user", "message": {"role": "user", "content": text}})

    async def control(self, request: dict[str, Any]) -> None:
        self._request_counter += 1
        await self._write(
            {"type": "control_request", "request_id": f"cloudws-{self._request_counter}", "request": request}
        )

    async def interrupt(self) -> None:
        await self.control({"subtype": "interrupt"})

    async def set_model(self, model: str) -> None:
        await self.control({"subtype": "set_model", "model": model})
        self.model = model

    async def lines(self) -> AsyncIterator[dict[str, Any]]:
        """Parsed stdout lines until the process ends; control requests from the CLI are
        refused here, since bypass mode never needs the host to answer one."""
        assert self._proc is not None and self._proc.stdout is not None
        async for raw in self._proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                log.warning("claude printed a non-JSON line: %r", raw[:200])
                continue
            if not isinstance(line, dict):
                continue
            if line.get("type") == "system" and line.get("subtype") == "init":
                self.saw_init = True
            if line.get("type") == "control_request":
                await self._write({
                    "type": "control_response",
                    "response": {"subtype": "error", "request_id": line.get("request_id"),
                                 "error": "jupyter_cloudws does not handle this request"},
                })  # fmt: skip
                continue
            yield line

    async def close(self, timeout_s: float = 5.0) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the CLI ends when its input ends
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except asyncio.TimeoutError:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
            kill_tools()
