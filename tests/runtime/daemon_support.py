"""A sandbox daemon served in the test's own event loop, with a hub's connection to its bridge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from cloudws_sandbox.daemon import Daemon

SOCKET_WAIT_TICKS = 200  # 20 ms each: how long a daemon may take to make its socket


@dataclass
class Served:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    serving: asyncio.Task[None]  # ends with the daemon


@asynccontextmanager
async def served(daemon: Daemon, socket_path: Path, stop_timeout_s: float = 30.0) -> AsyncIterator[Served]:
    """``daemon`` serving its bridge on ``socket_path`` and a connection to it; on the way out the
    connection closes and the daemon is stopped and waited for."""
    serving = asyncio.get_running_loop().create_task(daemon.serve())
    try:
        for _ in range(SOCKET_WAIT_TICKS):
            if socket_path.exists():
                break
            await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=2**26)
        yield Served(reader, writer, serving)
        writer.close()
    finally:
        daemon._stopping.set()
        await asyncio.wait_for(serving, stop_timeout_s)
