"""On an HTTPS server the panel's loopback reaches 127.0.0.1, a name its certificate was not
issued for: it trusts exactly the server's own certificate instead, without the name check.
A real TLS server on the loopback, certificates made here."""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jupyter_cloudws.panel.loopback import loopback_ssl_context


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    certfile, keyfile = folder / f"{name}.crt", folder / f"{name}.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    return certfile, keyfile


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server_cert(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 whose certificate names jupyter.example.test."""
    certfile, keyfile = self_signed(tmp_path, "jupyter.example.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/", certfile
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_loopback_trusts_the_servers_own_certificate_at_127_0_0_1(server_cert) -> None:
    url, certfile = server_cert
    assert httpx.get(url, verify=loopback_ssl_context(str(certfile))).text == "ok"


def test_a_name_check_would_refuse_127_0_0_1_and_another_certificate_is_refused(server_cert, tmp_path) -> None:
    url, certfile = server_cert
    with pytest.raises(httpx.ConnectError, match="(?i)hostname|IP address mismatch"):
        httpx.get(url, verify=ssl.create_default_context(cafile=str(certfile)))  # why the name check is off
    other, _ = self_signed(tmp_path, "someone.else.test")
    with pytest.raises(httpx.ConnectError, match="(?i)certificate verify failed"):
        httpx.get(url, verify=loopback_ssl_context(str(other)))  # whatever else answers gets no cookies
