"""A real ``jupyter server`` process with the extension, for tests and benchmarks that need to
kill and restart it (an in-process server cannot die the way a real one does)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``jupyter server`` on 127.0.0.1 with its own Jupyter dirs under ``root``."""

    def __init__(self, root: Path, *, cloudws_config: dict[str, Any] | None = None, token: str = "test-token") -> None:
        self.root = root
        self.token = token
        self.cloudws_config = cloudws_config or {}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cloudws/api"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        self.port = free_port()
        for sub in ("config", "data", "runtime", "work"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "config" / "jupyter_server_config.json").write_text(
            json.dumps({"CloudWorkspaces": self.cloudws_config})
        )
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.root / "config"),
            "JUPYTER_DATA_DIR": str(self.root / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
        }
        argv = [
            sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={self.port}",
            "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root / 'work'}",
        ]  # fmt: skip
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {self.log_tail()}")
            try:
                if httpx.get(self.api_url + "/status", headers=self.headers, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"jupyter server did not answer in {timeout_s} s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to tidy up, as in a crash or a laptop lid closing."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "server.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers=self.headers, timeout=30)
