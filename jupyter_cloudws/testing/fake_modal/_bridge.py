"""How fake modal calls are made: bound to the real signatures, run on one background loop.

Real modal (through synchronicity) runs every coroutine on its own event loop in a background
thread; ``f(...)`` blocks on it and ``f.aio(...)`` awaits it from the caller's loop. The fake does
the same, so objects made by a blocking call work with ``.aio`` calls and the other way round,
and cancelling an awaited ``.aio`` call (``asyncio.wait_for``) cancels the work.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from modal.exception import AsyncUsageWarning

# The message real modal gives (modal/_utils/async_utils.py, _blocking_in_async_warning).
BLOCKING_IN_ASYNC_MESSAGE = (
    "A blocking Modal interface is being used in an async context."
    "\n\nThis may cause performance issues or bugs."
    " Consider rewriting to use Modal's async interfaces:"
    "\nhttps://modal.com/docs/guide/async"
)

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: threading.Thread | None = None
_loop_pid: int | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The fake's own event loop, started on first use (and again in a forked child)."""
    global _loop, _loop_thread, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="fake-modal-loop", daemon=True)
            thread.start()
            _loop, _loop_thread, _loop_pid = loop, thread, os.getpid()
        return _loop


def _warn_if_blocking_in_async(stacklevel: int) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    # Real modal stays quiet in notebooks (sync use is expected there) and when
    # MODAL_ASYNC_WARNINGS turns the warning off; the fake follows the same switches.
    try:
        from modal._utils.async_utils import is_interactive_ipython
        from modal.config import config

        if is_interactive_ipython() or not config.get("async_warnings"):
            return
    except ImportError:  # pragma: no cover - a modal without these helpers warns always
        pass
    warnings.warn(BLOCKING_IN_ASYNC_MESSAGE, AsyncUsageWarning, stacklevel=stacklevel + 1)


def run_blocking(make_coro: Callable[[], Awaitable[Any]], *, stacklevel: int = 2) -> Any:
    """Run a fake coroutine to completion from synchronous code, as a blocking modal call does."""
    # The warning comes first: when tests turn it into an error, no coroutine is left unawaited.
    _warn_if_blocking_in_async(stacklevel + 1)
    loop = background_loop()
    if threading.current_thread() is _loop_thread:
        raise RuntimeError("a blocking fake modal call from the fake's own loop would deadlock")
    return asyncio.run_coroutine_threadsafe(_as_coroutine(make_coro), loop).result()


async def _as_coroutine(make_coro: Callable[[], Awaitable[Any]]) -> Any:
    return await make_coro()


async def run_async(make_coro: Callable[[], Awaitable[Any]]) -> Any:
    """Await a fake coroutine from any loop; cancelling the caller cancels the work."""
    future = asyncio.run_coroutine_threadsafe(_as_coroutine(make_coro), background_loop())
    return await asyncio.wrap_future(future)


class BridgedAsyncIterator:
    """An async generator that runs on the fake's loop, iterable from any loop or blocking code."""

    def __init__(self, make_agen: Callable[[], AsyncIterator[Any]]) -> None:
        self._make_agen = make_agen
        self._agen: AsyncIterator[Any] | None = None

    def _next(self) -> Awaitable[Any]:
        async def step() -> Any:
            if self._agen is None:
                self._agen = self._make_agen()
            return await self._agen.__anext__()

        return step()

    def __aiter__(self) -> BridgedAsyncIterator:
        return self

    async def __anext__(self) -> Any:
        return await run_async(self._next)

    def __iter__(self) -> Iterator[Any]:
        _warn_if_blocking_in_async(2)
        while True:
            try:
                yield asyncio.run_coroutine_threadsafe(_as_coroutine(self._next), background_loop()).result()
            except StopAsyncIteration:
                return


def _bind(real: Callable[..., Any], name: str, leading: tuple[Any, ...], args: tuple, kwargs: dict):
    """Bind a call as real modal would, so a call it refuses raises TypeError here too."""
    signature = inspect.signature(real)
    try:
        bound = signature.bind(*leading, *args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}(): {exc} (real signature: {signature})") from None
    bound.apply_defaults()
    return bound


def _takes_self_or_cls(real: Callable[..., Any]) -> bool:
    params = list(inspect.signature(real).parameters)
    return bool(params) and params[0] in ("self", "cls")


class Api:
    """A fake modal method: ``obj.method(...)`` blocks and ``obj.method.aio(...)`` awaits.

    ``real`` returns the real modal callable whose signature every call is bound against;
    ``impl(owner_or_instance, arguments)`` is the fake's coroutine (or async generator, with
    ``generator=True``) given the bound arguments by name, defaults applied.
    """

    def __init__(
        self,
        real: Callable[[], Callable[..., Any]],
        impl: Callable[[Any, dict[str, Any]], Any],
        *,
        generator: bool = False,
        record: bool = True,
    ) -> None:
        self._real = real
        self._impl = impl
        self._generator = generator
        self._record = record
        self._name = impl.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = f"{owner.__name__}.{name}"

    def __get__(self, instance: Any, owner: type) -> BoundApi:
        return BoundApi(self, instance, owner)


class BoundApi:
    def __init__(self, api: Api, instance: Any, owner: type) -> None:
        self._api = api
        self._instance = instance
        self._owner = owner

    def _prepare(self, args: tuple, kwargs: dict) -> Callable[[], Any]:
        real = self._api._real()
        target = self._instance if self._instance is not None else self._owner
        leading = (target,) if _takes_self_or_cls(real) else ()
        bound = _bind(real, self._api._name, leading, args, kwargs)
        arguments = dict(bound.arguments)
        if leading:
            arguments.pop(next(iter(inspect.signature(real).parameters)))
        if self._api._record:
            from ._state import record_call

            record_call(self._api._name, arguments)
        impl = self._api._impl
        return lambda: impl(target, arguments)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        make = self._prepare(args, kwargs)
        if self._api._generator:
            return iter(BridgedAsyncIterator(make))
        return run_blocking(make, stacklevel=2)

    def aio(self, *args: Any, **kwargs: Any) -> Any:
        make = self._prepare(args, kwargs)
        if self._api._generator:
            return BridgedAsyncIterator(make)
        return run_async(make)


def api(real: Callable[[], Callable[..., Any]], *, generator: bool = False, record: bool = True):
    """Decorate a fake implementation as the method whose signature ``real()`` gives."""

    def wrap(impl: Callable[[Any, dict[str, Any]], Any]) -> Api:
        return Api(real, impl, generator=generator, record=record)

    return wrap


def bind_plain(real: Callable[..., Any], name: str, target: Any, args: tuple, kwargs: dict) -> dict:
    """Bind a call to a real non-network modal function (no ``.aio``), e.g. ``Image.env``."""
    leading = (target,) if _takes_self_or_cls(real) else ()
    bound = _bind(real, name, leading, args, kwargs)
    arguments = dict(bound.arguments)
    if leading:
        arguments.pop(next(iter(inspect.signature(real).parameters)))
    return arguments
