"""``python -m cloudws_sandbox serve|attach``: run the runtime daemon, or pipe stdio to a running one.

``attach`` is the byte stream for backends that can only exec a process in the sandbox (Modal,
``docker exec``, ``kubectl exec``): the hub talks JSON lines to its stdin/stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .daemon import Daemon, DaemonConfig

SOCKET_NAME = "bridge.sock"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloudws_sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the sandbox runtime daemon")
    serve.add_argument("--state-dir", required=True, type=Path, help="holds config.json and the event log")
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--socket", type=Path, help=f"bridge socket to create (default: STATE_DIR/{SOCKET_NAME})")
    where.add_argument("--listen-fd", type=int, help="serve on this inherited, listening unix socket instead")
    attach = sub.add_parser("attach", help="pipe stdin/stdout to a running daemon's bridge socket")
    attach.add_argument("--socket", required=True, type=Path)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "serve":
        config = DaemonConfig.load(args.state_dir / "config.json")
        if args.listen_fd is not None:
            daemon = Daemon(config, args.state_dir, listen_fd=args.listen_fd)
        else:
            daemon = Daemon(config, args.state_dir, args.socket or args.state_dir / SOCKET_NAME)
        asyncio.run(daemon.serve())
        return 0
    return asyncio.run(_attach(args.socket))


async def _attach(socket_path: Path) -> int:
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
