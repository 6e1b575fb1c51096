"""An HTTP server for tests on 127.0.0.1 and a free port, answering from a daemon thread while
the test's event loop goes on: the shared life of the fake services (Anthropic, GitHub, a git
host)."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still parked in a request never blocks exit

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.client_resets = 0
        self.client_reset = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-request (a CLI killed with its sandbox) is no server error,
        # and socketserver's traceback on stderr would land in whatever the test reads there.
        if isinstance(sys.exc_info()[1], ConnectionError):
            self.client_resets += 1
            self.client_reset.set()
            return
        super().handle_error(request, client_address)


class LoopbackHTTPServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._server = _Server(handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=name, daemon=True)  # fmt: skip
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def client_resets(self) -> int:
        """Requests that ended because their client reset the connection."""
        return self._server.client_resets

    def wait_for_client_reset(self, timeout_s: float) -> bool:
        return self._server.client_reset.wait(timeout_s)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
