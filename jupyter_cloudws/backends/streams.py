"""Byte streams to a sandbox's daemon, as :class:`~.base.BridgeStream` implementations."""

from __future__ import annotations

import asyncio

from cloudws_sandbox.protocol import BRIDGE_MAX_LINE_BYTES

from .base import read_bounded_line


class StreamPair:
    """A :class:`BridgeStream` over an asyncio reader/writer pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def readline(self) -> bytes:
        return await read_bounded_line(self._reader, BRIDGE_MAX_LINE_BYTES)

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class ProcessStream:
    """A :class:`BridgeStream` over an exec'd process's stdin/stdout, the only stream that
    exec-style backends (Modal, docker exec, kubectl exec) offer."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc

    async def readline(self) -> bytes:
        assert self.proc.stdout is not None
        return await read_bounded_line(self.proc.stdout, BRIDGE_MAX_LINE_BYTES)

    async def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # attach ends when its input ends
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
