"""A repository's setup script, ``.cloudws/setup.sh``: run once after a fresh clone (or when a
repository image is prebuilt), with its output streamed as ``sandbox_progress`` events.

A failing script never fails the session: the user sees its last lines, and prompts still run.
Its output may print a secret (``env``, a verbose installer), so it is redacted as a stream:
a secret cut across two reads of the pipe is still caught.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .redaction import Redactor, StreamRedactor

SETUP_SCRIPT = ".cloudws/setup.sh"
SETUP_TIMEOUT_S = 1800.0
FLUSH_INTERVAL_S = 0.5  # output is sent at most this long after it was printed
FLUSH_LINES = 40  # ... or as soon as this many lines wait
EVENT_OUTPUT_MAX_CHARS = 8_000  # one event's output at most (a line longer than this is split)
STREAMED_MAX_CHARS = 256_000  # past this, only the tail is kept (shown if the script fails)
TAIL_LINES = 20
TAIL_KEEP_CHARS = 16_000  # the tail's lines together at most
EXIT_GRACE_S = 2.0  # after the script exits, how long a background child may keep its output open
READ_CHUNK_BYTES = 65_536
_STREAM = "setup"


class ScriptRefused(Exception):
    """``.cloudws/setup.sh`` is there but must not be run (e.g. a symlink out of the work tree)."""


def find_setup_script(workdir: str) -> Path | None:
    """The setup script to run, or None when the repository has none.

    The script comes with the repository, which anyone with push access controls; a symlink
    out of the work tree would run a file the repository does not hold, so it is refused.
    """
    path = Path(workdir) / SETUP_SCRIPT
    if not os.path.lexists(path):
        return None
    try:
        target = path.resolve(strict=True)
        work = Path(workdir).resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # a dangling symlink, or a loop
        raise ScriptRefused(f"{SETUP_SCRIPT} cannot be read: {exc.__class__.__name__}") from None
    if not target.is_relative_to(work):
        raise ScriptRefused(f"{SETUP_SCRIPT} is a symlink pointing outside the work tree; it was not run")
    if not target.is_file():
        raise ScriptRefused(f"{SETUP_SCRIPT} is not a file; it was not run")
    return target


class OutputBatcher:
    """The script's output on its way to events: redacted as one stream, sent in batches of at
    most :data:`FLUSH_LINES` lines and :data:`EVENT_OUTPUT_MAX_CHARS` characters, cut with a note
    past :data:`STREAMED_MAX_CHARS`; the last lines are kept for a failure report."""

    def __init__(self, redactor: Redactor, emit: Callable[[str], None]) -> None:
        self._stream = StreamRedactor(redactor)
        self._emit = emit
        self._pending: list[str] = []
        self._pending_chars = 0
        self._pending_lines = 0
        self._streamed_chars = 0
        self._cut = False
        self._tail = ""

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def feed(self, text: str) -> None:
        self._add(self._stream.feed(_STREAM, text))

    def finish(self) -> None:
        """The output ended: release what the redactor held back, and send everything."""
        self._add(self._stream.end(_STREAM))
        self.flush()

    def flush(self) -> None:
        text = "".join(self._pending)
        self._pending, self._pending_chars, self._pending_lines = [], 0, 0
        while text:
            piece = text[:EVENT_OUTPUT_MAX_CHARS]
            if len(text) > EVENT_OUTPUT_MAX_CHARS and (newline := piece.rfind("\n")) > 0:
                piece = piece[: newline + 1]  # whole lines where it can
            text = text[len(piece) :]
            self._streamed_chars += len(piece)
            self._emit(piece)

    def tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(self._tail.rstrip("\n").split("\n")[-lines:]) if self._tail else ""

    def _add(self, clean: str) -> None:
        if not clean:
            return
        self._tail = (self._tail + clean)[-TAIL_KEEP_CHARS:]
        if self._cut:
            return
        room = STREAMED_MAX_CHARS - self._streamed_chars - self._pending_chars
        cut = len(clean) > room
        if cut:
            clean = clean[:room]
        self._pending.append(clean)
        self._pending_chars += len(clean)
        self._pending_lines += clean.count("\n")
        if cut:
            self._cut = True
            self._pending.append(f"\n… output past {STREAMED_MAX_CHARS:,} characters is not shown; "
                                 "if the script fails, its last lines are\n")  # fmt: skip
            self.flush()
        elif self._pending_chars >= EVENT_OUTPUT_MAX_CHARS or self._pending_lines >= FLUSH_LINES:
            self.flush()


@dataclass(frozen=True)
class SetupOutcome:
    ok: bool
    detail: str  # "exit code 0", "exit code 3", "timed out after 1800 s", "could not start: ..."
    tail: str  # the output's last lines, redacted


async def run_setup_script(
    script: Path, workdir: str, env: dict[str, str], timeout_s: float, batcher: OutputBatcher
) -> SetupOutcome:
    """Run ``bash script`` in ``workdir`` with stdin closed, streaming its output (stdout and
    stderr together) through ``batcher``. Never raises for the script's own failure; cancelled,
    it kills the script and all it started (its process group) before it returns."""
    loop = asyncio.get_running_loop()
    try:
        proc = await asyncio.create_subprocess_exec(
            "bash", str(script), cwd=workdir, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        return SetupOutcome(False, f"could not start: {exc}", "")
    timer: asyncio.TimerHandle | None = None

    def flush_now() -> None:
        nonlocal timer
        timer = None
        batcher.flush()

    async def pump() -> None:
        nonlocal timer
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(READ_CHUNK_BYTES):
            batcher.feed(decoder.decode(chunk))
            if batcher.pending and timer is None:
                timer = loop.call_later(FLUSH_INTERVAL_S, flush_now)
        batcher.feed(decoder.decode(b"", final=True))

    reading = loop.create_task(pump())
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except asyncio.TimeoutError:
            timed_out = True
            _kill_group(proc.pid)
            await proc.wait()
        # A service the script left running in the background may hold the output open.
        await asyncio.wait([reading], timeout=EXIT_GRACE_S)
    except BaseException:  # cancelled: the daemon is stopping, and the script goes with it
        _kill_group(proc.pid)
        await proc.wait()  # reaped before the daemon goes on stopping
        raise
    finally:
        reading.cancel()
        if timer is not None:
            timer.cancel()
    batcher.finish()
    if timed_out:
        return SetupOutcome(False, f"timed out after {timeout_s:g} s", batcher.tail())
    code = proc.returncode
    return SetupOutcome(code == 0, f"exit code {code}", batcher.tail())


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone
