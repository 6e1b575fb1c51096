"""The credential helper git runs for the daemon's own network calls, as a script:
``cd / && exec PYTHON -I -S .../credential_helper.py get|store|erase``.

It reads git's request, asks the daemon's socket with the nonce of the git call it runs under
(see credentials.py), and prints ``username=``/``password=`` only when the daemon answers with
them. It is run as a file, not as ``-m cloudws_sandbox``, and imports only the standard library:
``-I`` keeps the work tree (git's cwd, which the agent writes), ``PYTHONPATH`` and the user's
site-packages off ``sys.path``, so a ``json.py`` or ``cloudws_sandbox/`` the agent plants there
is never imported into the process that holds the password. Keep it so: no package-relative
import, nothing outside the standard library.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import IO, Any

NONCE_ENV = "CLOUDWS_GIT_NONCE"
SOCKET_ENV = "CLOUDWS_GIT_CREDENTIAL_SOCKET"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; longer paths go through /proc/self/fd
MAX_REPLY_BYTES = 16 * 1024
TIMEOUT_S = 30.0  # the helper gives up on a daemon that does not answer


def helper_main(action: str, stdin: IO[str], stdout: IO[str], environ: dict[str, str] | None = None) -> int:
    """Answer one request of git's credential protocol from the daemon. Prints nothing unless
    the daemon gave a credential; never fails git (it then goes on to the next way to log in)."""
    env = os.environ if environ is None else environ
    fields_in: dict[str, str] = {}
    for line in stdin:
        line = line.rstrip("\n")
        if not line:
            break
        key, sep, value = line.partition("=")
        if sep:
            fields_in[key] = value
    nonce, socket_path = env.get(NONCE_ENV, ""), env.get(SOCKET_ENV, "")
    if not nonce or not socket_path:
        return 0
    request = {"action": action, "nonce": nonce, "protocol": fields_in.get("protocol", ""),
               "host": fields_in.get("host", "")}  # fmt: skip
    try:
        reply = _ask(Path(socket_path), request)
    except (OSError, ValueError):
        return 0
    username, password = reply.get("username"), reply.get("password")
    if action == "get" and isinstance(username, str) and isinstance(password, str):
        stdout.write(f"username={username}\npassword={password}\n")
        stdout.flush()
    return 0


def _ask(socket_path: Path, request: dict[str, str]) -> dict[str, Any]:
    dir_fd = None
    address = str(socket_path)
    if len(address) > MAX_SOCKET_PATH:
        dir_fd = os.open(socket_path.parent, os.O_PATH | os.O_DIRECTORY)
        address = f"/proc/self/fd/{dir_fd}/{socket_path.name}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT_S)
            sock.connect(address)
            sock.sendall((json.dumps(request) + "\n").encode())
            data = b""
            while not data.endswith(b"\n") and len(data) < MAX_REPLY_BYTES:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    reply = json.loads(data) if data.strip() else {}
    return reply if isinstance(reply, dict) else {}


if __name__ == "__main__":
    sys.exit(helper_main(sys.argv[1] if len(sys.argv) == 2 else "", sys.stdin, sys.stdout))
