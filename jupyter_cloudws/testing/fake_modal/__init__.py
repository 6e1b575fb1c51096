"""A fake of the ``modal`` 1.6 module for tests on machines that cannot reach Modal.

Use it where the real module would go (``c.ModalBackend.modal_module =
"jupyter_cloudws.testing.fake_modal"``) with ``CLOUDWS_FAKE_MODAL_ROOT`` set to a directory for
its state. It covers the part of modal's API the Modal backend uses, and holds it to the real one:

- Every call is bound against the real modal 1.6 signature first (``inspect.signature(real).bind``),
  so a call real modal would refuse raises ``TypeError`` here too. Errors are the real classes
  (``fake_modal.exception`` *is* ``modal.exception``).
- Network-bound calls have ``.aio`` forms; a blocking form called while an event loop runs in
  the thread warns ``AsyncUsageWarning`` as real modal does.
- No credentials (``MODAL_TOKEN_ID`` + ``MODAL_TOKEN_SECRET``, or a profile in
  ``$MODAL_CONFIG_PATH`` / ``~/.modal.toml``): the first network call raises ``AuthError``.
  ``CLOUDWS_FAKE_MODAL_UNREACHABLE=1``: every network call hangs until cancelled.
- A sandbox is a real process tree under bubblewrap, started detached by a supervisor
  (``supervisor.py``): it outlives the process that made it, and ``Sandbox.from_id`` finds it
  from any process. Exec'd processes join its namespaces, so their stdio is real pipes.

Real-API facts worth knowing (modal 1.6.4), which the fake keeps:

- ``Image.from_id(id)`` does no I/O and never fails; an unknown or expired id fails when the
  image is used (``Sandbox.create``, ``Image.build``) with ``NotFoundError``.
  ``Image.from_id.aio`` exists but warns ``DeprecationError`` (a warning, not an exception).
- ``Secret.from_dict`` / ``Secret.from_name`` and the ``Image`` builders are plain functions
  without ``.aio``; a named secret is looked up only when used.
- ``ContainerProcess.returncode`` raises ``InvalidError`` until ``wait``/``poll`` saw the end.
- ``Sandbox.returncode`` is 124 after the lifetime ``timeout`` and 137 after ``terminate``;
  ``Sandbox.list`` yields running sandboxes only.

What the fake cannot show: it runs the host's files and Python (image layers are recorded and
checked, not built); only ``supervisor.WRITABLE_PATHS`` are writable and snapshotted; no GPUs,
volumes, tunnels, PTYs or a sandbox's main stdin; a client's death closes its execs' pipes,
where real Modal would keep an exec running.
"""

from __future__ import annotations

from modal import exception
from modal.stream_type import StreamType

from ._objects import App, Image, Secret, expire_image
from ._process import ContainerProcess, StreamReader, StreamWriter
from ._sandbox import Sandbox
from ._state import ROOT_ENV, UNREACHABLE_ENV, read_calls
from .supervisor import WRITABLE_PATHS

__version__ = "1.6.4"

__all__ = [
    "App",
    "ContainerProcess",
    "Image",
    "ROOT_ENV",
    "Sandbox",
    "Secret",
    "StreamReader",
    "StreamType",
    "StreamWriter",
    "UNREACHABLE_ENV",
    "WRITABLE_PATHS",
    "exception",
    "expire_image",
    "read_calls",
    "terminate_all",
]


def terminate_all(fake_root: str) -> int:
    """Terminate every sandbox still running under a fake root (test cleanup); how many were."""
    import socket
    from pathlib import Path

    from .supervisor import control_address

    count = 0
    sandboxes = Path(fake_root) / "sandboxes"
    if not sandboxes.exists():
        return 0
    for sandbox_dir in sandboxes.iterdir():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(control_address(sandbox_dir))
            sock.sendall(b"terminate\n")
            while sock.recv(4096):
                pass
            count += 1
        except (ConnectionRefusedError, FileNotFoundError):
            pass
        finally:
            sock.close()
    return count
