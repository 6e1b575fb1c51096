"""The test services' loopback server: a client that resets its connection is not a server
error, and prints nothing on the test's stderr (where a magic's output is read)."""

from __future__ import annotations

import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler

from jupyter_cloudws.testing.loopback import LoopbackHTTPServer


class Slow(BaseHTTPRequestHandler):
    reading = threading.Event()

    def do_POST(self) -> None:
        Slow.reading.set()
        self.rfile.read(int(self.headers["Content-Length"]))  # the client resets before the body ends


def test_a_client_that_resets_its_connection_prints_nothing(capfd) -> None:
    server = LoopbackHTTPServer(Slow, "loopback-test")
    try:
        client = socket.create_connection(("127.0.0.1", server.port))
        client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial")
        assert Slow.reading.wait(10)
        # SO_LINGER 0: close sends a reset, as a killed process's socket does.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        assert server.wait_for_client_reset(10)
    finally:
        server.stop()
    assert server.client_resets == 1
    assert capfd.readouterr().err == ""
