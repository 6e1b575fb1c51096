"""Fake ``modal.container_process.ContainerProcess`` and its stdio streams (``modal/io_streams.py``).

As in modal 1.6.4: a reader yields text chunks, or lines only when the exec asked for
``bufsize=1`` (with ``text=True``), or bytes with ``text=False``; all reads of one reader share
one stream. ``stdin.write`` only buffers and ``await stdin.drain.aio()`` sends; ``write_eof``
closes stdin at the next drain. ``wait`` gives the exit code (128 + signal when killed, -1 after
the exec's ``timeout``); ``returncode`` raises until ``wait`` or ``poll`` has seen the end.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import modal
from modal.exception import InvalidError

from . import _state
from ._bridge import BridgedAsyncIterator, api

if TYPE_CHECKING:
    from ._sandbox import Sandbox

# Real modal refuses to buffer more than this between drains (io_streams.py).
MAX_BUFFER_BYTES = 16 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024


class _StreamCore:
    """One process pipe read on the fake's loop, decoded and split as the exec asked."""

    def __init__(self, stream: asyncio.StreamReader | None, *, text: bool, by_line: bool) -> None:
        self._stream = stream
        self._text = text
        self._by_line = by_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._pending: list[Any] = []
        self._line_buffer = ""
        self._eof = False
        self._lock = asyncio.Lock()

    async def next_item(self) -> Any:
        async with self._lock:
            while not self._pending:
                if self._eof:
                    raise StopAsyncIteration
                await self._fill()
            return self._pending.pop(0)

    async def _fill(self) -> None:
        if self._stream is None:
            raise ValueError("the stream of an exec with stdout/stderr other than PIPE cannot be read")
        data = await self._stream.read(_CHUNK_BYTES)
        if not data:
            self._eof = True
            if self._text:
                rest = self._line_buffer + self._decoder.decode(b"", final=True)
                self._line_buffer = ""
                if rest:
                    self._pending.append(rest)
            return
        if not self._text:
            self._pending.append(data)
            return
        text = self._decoder.decode(data, final=False)
        if not text:
            return
        if not self._by_line:
            self._pending.append(text)
            return
        self._line_buffer += text
        while "\n" in self._line_buffer:
            line, self._line_buffer = self._line_buffer.split("\n", 1)
            self._pending.append(line + "\n")

    async def read_all(self) -> Any:
        parts = []
        while True:
            try:
                parts.append(await self.next_item())
            except StopAsyncIteration:
                break
        return ("" if self._text else b"").join(parts)


class StreamReader:
    """``modal.io_streams.StreamReader``: iterate it (async or not), or ``read`` it all."""

    def __init__(self, core: Any) -> None:
        self._core = core

    @api(lambda: modal.io_streams.StreamReader.read, record=False)
    async def read(self, a: dict[str, Any]) -> Any:
        await _state.network_call()
        return await self._core.read_all()

    def __aiter__(self) -> AsyncIterator[Any]:
        return BridgedAsyncIterator(self._items)

    def __iter__(self) -> Any:
        return iter(BridgedAsyncIterator(self._items))

    async def _items(self) -> AsyncIterator[Any]:
        await _state.network_call()
        while True:
            try:
                yield await self._core.next_item()
            except StopAsyncIteration:
                return


class StreamWriter:
    """``modal.io_streams.StreamWriter`` for an exec'd process's stdin."""

    def __init__(self, stdin: asyncio.StreamWriter | None) -> None:
        self._stdin = stdin
        self._buffer = bytearray()
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview | str) -> None:
        if self._closed:
            raise ValueError("Stdin is closed. Cannot write to it.")
        if not isinstance(data, (bytes, bytearray, memoryview, str)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__}")
        if isinstance(data, str):
            data = data.encode("utf-8")
        if len(self._buffer) + len(data) > MAX_BUFFER_BYTES:
            raise BufferError("Buffer size exceed limit. Call drain to flush the buffer.")
        self._buffer.extend(data)

    def write_eof(self) -> None:
        self._closed = True

    @api(lambda: modal.io_streams.StreamWriter.drain, record=False)
    async def drain(self, a: dict[str, Any]) -> None:
        await _state.network_call()
        if self._stdin is None or self._stdin.is_closing():
            self._buffer.clear()
            return
        data = bytes(self._buffer)
        try:
            if data:
                self._stdin.write(data)
                await self._stdin.drain()
            if self._closed:
                self._stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            # The process has exited; like the real router, a late write is not an error.
            pass
        self._buffer.clear()


class ContainerProcess:
    """``modal.container_process.ContainerProcess``: one exec'd process in a sandbox."""

    def __init__(self, proc: asyncio.subprocess.Process, holder: asyncio.StreamWriter, *,
                 text: bool, by_line: bool, timeout_s: int | None) -> None:  # fmt: skip
        self._proc = proc
        self._holder = holder  # held open while the process runs: the sandbox is not idle
        self._returncode: int | None = None
        self._exit_code: int | None = None
        self._timed_out = False
        self._stdout = StreamReader(_StreamCore(proc.stdout, text=text, by_line=by_line))
        self._stderr = StreamReader(_StreamCore(proc.stderr, text=text, by_line=by_line))
        self._stdin = StreamWriter(proc.stdin)
        loop = asyncio.get_running_loop()
        self._done = loop.create_task(self._watch())
        self._timer = loop.call_later(timeout_s, self._kill_on_timeout) if timeout_s else None

    def __repr__(self) -> str:
        return f"ContainerProcess(pid={self._proc.pid})"

    async def _watch(self) -> None:
        code = await self._proc.wait()
        if self._timer is not None:
            self._timer.cancel()
        self._holder.close()
        self._exit_code = -1 if self._timed_out else (128 - code if code < 0 else code)

    def _kill_on_timeout(self) -> None:
        self._timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    @property
    def stdout(self) -> StreamReader:
        return self._stdout

    @property
    def stderr(self) -> StreamReader:
        return self._stderr

    @property
    def stdin(self) -> StreamWriter:
        return self._stdin

    @property
    def returncode(self) -> int:
        if self._returncode is None:
            raise InvalidError(
                "You must call wait() before accessing the returncode. "
                "To poll for the status of a running process, use poll() instead."
            )
        return self._returncode

    @api(lambda: modal.container_process.ContainerProcess.wait, record=False)
    async def wait(self, a: dict[str, Any]) -> int:
        await _state.network_call()
        await asyncio.shield(self._done)
        self._returncode = self._exit_code
        return self._returncode

    @api(lambda: modal.container_process.ContainerProcess.poll, record=False)
    async def poll(self, a: dict[str, Any]) -> int | None:
        await _state.network_call()
        if self._done.done():
            self._returncode = self._exit_code
        return self._returncode


class _LogCore:
    """A sandbox's main stdout or stderr: its log file, read once the sandbox has ended."""

    def __init__(self, sandbox: Sandbox, name: str) -> None:
        self._sandbox = sandbox
        self._name = name
        self._items: list[str] | None = None

    async def _load(self) -> list[str]:
        if self._items is None:
            await self._sandbox._wait(raise_on_termination=False)
            text = (self._sandbox._dir / self._name).read_text(errors="replace")
            self._items = text.splitlines(keepends=True)
        return self._items

    async def next_item(self) -> str:
        items = await self._load()
        if not items:
            raise StopAsyncIteration
        return items.pop(0)

    async def read_all(self) -> str:
        items = await self._load()
        text = "".join(items)
        items.clear()
        return text


def FileStreamReader(sandbox: Sandbox, name: str) -> StreamReader:  # noqa: N802 - a reader factory
    return StreamReader(_LogCore(sandbox, name))
