"""``python -m cloudws_sandbox serve|attach``: run the runtime daemon, or pipe stdio to a
running one.

``attach`` is the byte stream for backends that can only exec a process in the sandbox (Modal,
``docker exec``, ``kubectl exec``): the hub talks JSON lines to its stdin/stdout. Both hold the
git token in memory at some point (the daemon serves it, ``attach`` carries the ``credentials``
frame on Modal), so both make themselves non-dumpable first: a process of the same uid that is
not root (or lacks CAP_SYS_PTRACE) can then neither ptrace them nor read their
``/proc/PID/mem`` or ``environ``. The agent runs as the daemon's uid, and on Modal that uid is
root, which this does not stop (see credentials.py for what does and does not hold). The
credential helper git runs is credential_helper.py, run as a script.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

SOCKET_NAME = "bridge.sock"


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m cloudws_sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the sandbox runtime daemon")
    serve.add_argument("--state-dir", required=True, type=Path, help="holds config.json and the event log")
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--socket", type=Path, help=f"bridge socket to create (default: STATE_DIR/{SOCKET_NAME})")
    where.add_argument("--listen-fd", type=int, help="serve on this inherited, listening unix socket instead")
    serve.add_argument("--config-json", help="the daemon's config as JSON, written to STATE_DIR/config.json "
                       "(remote backends, which cannot write files before the sandbox starts)")
    serve.add_argument("--wait-for", type=Path, help="start only once this file exists (a backend copying "
                       "files in first, such as a saved conversation)")
    serve.add_argument("--wait-timeout-s", type=float, default=300.0, help="give up waiting after this long")
    attach = sub.add_parser("attach", help="pipe stdin/stdout to a running daemon's bridge socket")
    attach.add_argument("--socket", required=True, type=Path)
    args = parser.parse_args(args_in)
    make_undumpable()
    import asyncio

    from .cli import find_cli
    from .daemon import Daemon, DaemonConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "serve":
        if args.config_json is not None:
            problem = _write_config(args.config_json, args.state_dir)
            if problem:
                print(problem, file=sys.stderr)
                return 2
        if args.wait_for is not None and not _wait_for(args.wait_for, args.wait_timeout_s):
            print(f"{args.wait_for} did not appear within {args.wait_timeout_s:g} s", file=sys.stderr)
            return 3
        home = os.environ.get("HOME")
        if home:  # a remote image names HOME without making it
            os.makedirs(home, exist_ok=True)
        config = DaemonConfig.load(args.state_dir / "config.json")
        if not config.cli_path:
            config.cli_path = find_cli() or "claude"
        if args.listen_fd is not None:
            daemon = Daemon(config, args.state_dir, listen_fd=args.listen_fd)
        else:
            daemon = Daemon(config, args.state_dir, args.socket or args.state_dir / SOCKET_NAME)
        asyncio.run(daemon.serve())
        return 0
    return asyncio.run(_attach(args.socket))


PR_GET_DUMPABLE = 3  # <linux/prctl.h>
PR_SET_DUMPABLE = 4


def make_undumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: no ptrace, ``/proc/PID/mem`` or ``environ`` for processes
    of the same uid without CAP_SYS_PTRACE, and no core dump. It is reset by execve, so the
    agent and git, which the daemon starts, stay ordinary. False (logged) where unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError, ImportError) as exc:
        print(f"cloudws_sandbox: could not make the process non-dumpable (a same-uid process may read "
              f"its memory): {exc}", file=sys.stderr)  # fmt: skip
        return False
    return True


def _write_config(raw: str, state_dir: Path) -> str | None:
    """Check ``raw`` is a daemon config and write it where ``serve`` reads it; else say why."""
    from .daemon import DaemonConfig

    try:
        data = json.loads(raw)
        known = {f.name for f in fields(DaemonConfig)}
        # Fields this runtime does not know (a newer hub, an older runtime in a snapshot) are
        # dropped rather than refused.
        data = {k: v for k, v in data.items() if k in known}
        DaemonConfig(**data)
    except (ValueError, TypeError, AttributeError) as exc:
        return f"--config-json is not a daemon config: {exc}"
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "config.json").write_text(json.dumps(data, indent=2))
    return None


def _wait_for(path: Path, timeout_s: float) -> bool:
    deadline_s = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline_s:
            return False
        time.sleep(0.05)
    return True


async def _attach(socket_path: Path) -> int:
    import asyncio

    try:
        reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=2**26)
    except OSError as exc:
        print(f"cannot reach the sandbox daemon at {socket_path}: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def upstream() -> None:
        while line := await stdin.readline():
            writer.write(line)
            await writer.drain()
        writer.write_eof()

    async def downstream() -> None:
        while chunk := await reader.read(65536):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()

    up = loop.create_task(upstream())
    await downstream()
    up.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
