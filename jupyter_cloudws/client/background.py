"""One daemon thread running an asyncio loop of its own, for a Client's live streams.

A kernel already runs a loop on its main thread (ipykernel's), and the client's calls are
synchronous: streams must neither need that loop nor block it, so they live here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("jupyter_cloudws.client")
T = TypeVar("T")


class LoopThread:
    """Started on first use; :meth:`close` cancels what runs on it and joins the thread."""

    def __init__(self, name: str = "cloudws-stream") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; the returned future is safe to wait on from any thread
        but the loop's own."""
        try:
            loop = self._ensure_started()
        except RuntimeError:
            coro.close()  # never to run: say so quietly, not with a "never awaited" warning
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def call_soon(self, callback: Any, *args: Any) -> None:
        self._ensure_started().call_soon_threadsafe(callback, *args)

    def call_later(self, delay_s: float, callback: Any, *args: Any) -> None:
        """Run ``callback(*args)`` on the loop thread after ``delay_s`` seconds (from any thread)."""
        loop = self._ensure_started()
        loop.call_soon_threadsafe(loop.call_later, delay_s, callback, *args)

    @property
    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._loop, ready), name=self._name, daemon=True
                )
                self._thread.start()
                ready.wait()
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def close(self, timeout_s: float = 5.0) -> None:
        """Cancel every task on the loop, let them finish (websockets close politely), stop."""
        if self.in_loop_thread:
            raise RuntimeError("close() cannot run in a subscriber callback: it would wait for itself")
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(timeout_s)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            log.warning("stream tasks did not end within %s s: %s", timeout_s, exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
