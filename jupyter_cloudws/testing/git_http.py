"""A real git smart-HTTP server for tests: Debian git's own ``git http-backend`` CGI behind a small
threaded HTTP server on 127.0.0.1, serving the bare repositories under one root directory.

Sandboxes reach repositories by URL the way they would reach a code host (a Modal sandbox cannot
see this machine's paths), and the same test runs on every backend::

    with GitHttpServer(tmp_path / "remotes") as server:
        url = server.make_remote("project", {"README.md": "# hi\\n"})
        subprocess.run(["git", "clone", url, "work"], check=True)

Clone, fetch and push work (protocol v0 and v2). Bodies stream both ways, a pack is never held
whole: a request body with ``Content-Length`` is copied as it arrives, a chunked one (git sends
those for large pushes) is de-chunked into the CGI's stdin, which http-backend then reads to its
end (it does so when ``CONTENT_LENGTH`` is unset). ``Content-Encoding: gzip`` bodies (large fetch
negotiations) are passed on as they are: http-backend inflates them itself. The CGI's output goes
back chunked, so connections stay open for git's next request.

With ``token=`` set every request must carry it, as ``Authorization: Bearer TOKEN`` or as the
password of HTTP Basic auth (any user name); others get 401 with a Basic challenge, as a code host
answers for a private repository.
"""

from __future__ import annotations

import base64
import hmac
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from .loopback import LoopbackHTTPServer

__all__ = ["GitHttpServer", "http_backend_path"]

COPY_BUFFER_BYTES = 64 * 1024
REALM = "cloudws-test-git"
# Who the CGI is told pushed: http-backend enables receive-pack only for an authenticated user
# (REMOTE_USER set) or a repository with http.receivepack=true.
DEFAULT_PUSHER = "cloudws-test"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Seed", "GIT_AUTHOR_EMAIL": "seed@example.test",
    "GIT_COMMITTER_NAME": "Seed", "GIT_COMMITTER_EMAIL": "seed@example.test",
}  # fmt: skip


def http_backend_path() -> str:
    """The ``git-http-backend`` CGI of the git on PATH (it lives in ``git --exec-path``)."""
    exec_path = subprocess.run(["git", "--exec-path"], check=True, capture_output=True, text=True).stdout.strip()
    path = os.path.join(exec_path, "git-http-backend")
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"git-http-backend not found in git's exec path {exec_path}")
    return path


def _git(*args: str, cwd: Path | None = None) -> None:
    env = {**os.environ, **GIT_IDENTITY, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


class GitHttpServer:
    """Serve the bare repositories under ``root`` (``root/NAME.git`` is ``{url}/NAME.git``)."""

    def __init__(self, root: Path, *, token: str | None = None, allow_push: bool = True) -> None:
        self.root = Path(root)
        self.token = token
        self.allow_push = allow_push
        self.backend = http_backend_path()
        # What git asked for: method, path, query, chunked, content_encoding, user, status.
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: LoopbackHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> GitHttpServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = LoopbackHTTPServer(_make_handler(self), "git-http")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the git HTTP server is not running")
        return self._server.port

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, name: str) -> str:
        return f"{self.url}/{name}.git"

    def path_for(self, name: str) -> Path:
        return self.root / f"{name}.git"

    # -- repositories ---------------------------------------------------------------------------

    def make_remote(self, name: str = "project", files: dict[str, str] | None = None) -> str:
        """A bare repository ``NAME.git`` with one commit on ``main`` holding ``files``; its URL."""
        bare = self.path_for(name)
        if bare.exists():
            raise FileExistsError(f"a repository named {name!r} is already served from {bare}")
        _git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        _git("config", "http.receivepack", "true" if self.allow_push else "false", cwd=bare)
        with tempfile.TemporaryDirectory(prefix="cloudws-seed-") as seed_dir:
            seed = Path(seed_dir)
            _git("init", "--quiet", "--initial-branch=main", str(seed))
            for rel, content in (files or {"README.md": f"# {name}\n"}).items():
                (seed / rel).parent.mkdir(parents=True, exist_ok=True)
                (seed / rel).write_text(content)
            _git("add", "--all", cwd=seed)
            _git("commit", "--quiet", "-m", "initial commit", cwd=seed)
            _git("push", "--quiet", str(bare), "HEAD:refs/heads/main", cwd=seed)
        return self.url_for(name)

    def remove(self, name: str) -> None:
        shutil.rmtree(self.path_for(name))

    # -- what a request may do ------------------------------------------------------------------

    def authorize(self, header: str | None) -> str | None:
        """The user a request acts as, or None when a token is required and it lacks it."""
        if self.token is None:
            return DEFAULT_PUSHER if self.allow_push else None
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return DEFAULT_PUSHER if hmac.compare_digest(value.encode(), self.token.encode()) else None
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return (user or DEFAULT_PUSHER) if hmac.compare_digest(password.encode(), self.token.encode()) else None
        return None

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)


def _make_handler(server: GitHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, and chunked bodies both ways

        def log_message(self, format: str, *args: Any) -> None:  # quiet: requests are recorded instead
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            url = urlsplit(self.path)
            entry: dict[str, Any] = {
                "method": self.command, "path": unquote(url.path), "query": url.query,
                "chunked": self.headers.get("Transfer-Encoding", "").lower() == "chunked",
                "content_encoding": self.headers.get("Content-Encoding", ""),
            }  # fmt: skip
            authorization = self.headers.get("Authorization")
            user = server.authorize(authorization)
            if server.token is not None and user is None:
                entry["status"] = 401
                server._record(entry)
                self._drain_body()
                self._reply(401, b"authentication required\n",
                            {"WWW-Authenticate": f'Basic realm="{REALM}"'})  # fmt: skip
                return
            entry["user"] = user
            try:
                self._run_cgi(url.query, user, entry)
            except (BrokenPipeError, ConnectionResetError):
                recorded = "status" in entry
                entry["status"] = "client went away"
                if not recorded:
                    server._record(entry)

        def _cgi_env(self, query: str, user: str | None) -> dict[str, str]:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "HOME": str(server.root),  # no user config of the test machine's leaks in
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "SERVER_SOFTWARE": "cloudws-git-http",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": unquote(urlsplit(self.path).path),
                "QUERY_STRING": query,
                "REMOTE_ADDR": self.client_address[0],
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            }
            if user is not None:
                env["REMOTE_USER"] = user
            length = self.headers.get("Content-Length")
            if length is not None:
                env["CONTENT_LENGTH"] = length
            # Every header as HTTP_*, as CGI wants: http-backend reads HTTP_CONTENT_ENCODING (gzip
            # bodies) and HTTP_GIT_PROTOCOL (protocol v2) from there. Never the credentials.
            for name, value in self.headers.items():
                key = "HTTP_" + name.upper().replace("-", "_")
                if key not in ("HTTP_AUTHORIZATION", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"):
                    env[key] = value
            return env

        def _run_cgi(self, query: str, user: str | None, entry: dict[str, Any]) -> int:
            proc = subprocess.Popen(
                [server.backend], env=self._cgi_env(query, user),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
            # The body goes in on its own thread while the output comes back on this one: a CGI may
            # answer (sideband progress) before it has read everything, and a full pipe either way
            # would otherwise stall both.
            feeder = threading.Thread(target=self._feed_body, args=(proc.stdin,), daemon=True)
            feeder.start()
            errors: list[bytes] = []
            reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
            reader.start()
            try:
                status = self._relay_output(proc.stdout, entry)
            finally:
                proc.stdout.close()
                feeder.join()
                reader.join()
                proc.wait()
            if proc.returncode != 0 or status >= 400:
                self.log_error("git http-backend: %s", b"".join(errors).decode(errors="replace").strip())
            return status

        def _feed_body(self, stdin: IO[bytes]) -> None:
            try:
                for piece in self._body_pieces():
                    stdin.write(piece)
            except (BrokenPipeError, ConnectionResetError, ValueError):
                pass  # the CGI stopped reading (it refused the request): its answer says why
            finally:
                try:
                    stdin.close()
                except BrokenPipeError:
                    pass

        def _body_pieces(self) -> Iterator[bytes]:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size_line = self.rfile.readline(1024)
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return
                    left = size
                    while left:
                        piece = self.rfile.read(min(left, COPY_BUFFER_BYTES))
                        if not piece:
                            raise ConnectionResetError("the client closed inside a chunk")
                        left -= len(piece)
                        yield piece
                    self.rfile.readline(1024)  # the CRLF after the chunk
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                piece = self.rfile.read(min(left, COPY_BUFFER_BYTES))
                if not piece:
                    raise ConnectionResetError("the client closed before the end of the body")
                left -= len(piece)
                yield piece

        def _drain_body(self) -> None:
            for _ in self._body_pieces():
                pass

        def _relay_output(self, stdout: IO[bytes], entry: dict[str, Any]) -> int:
            """Turn the CGI's headers into a response and stream its body back chunked. The
            request is recorded (``entry`` with its status) before the body's last chunk: git may
            exit as soon as that arrives, and a test then reads the record at once."""
            status, headers = 200, []
            while True:
                line = stdout.readline()
                if not line or line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                else:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            entry["status"] = status
            server._record(entry)
            while piece := stdout.read1(COPY_BUFFER_BYTES):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return status

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "text/plain", "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler
