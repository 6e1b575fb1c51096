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


# JupyterLab made quiet for tests: no browser, no news or update checks, no PyPI extension manager.
LAB_ARGS = [
    "--LabApp.expose_app_in_browser=True",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
]
NOTEBOOK_ARGS = ["--JupyterNotebookApp.expose_app_in_browser=True"]
# The config section of each browser app: Notebook 7 is a JupyterLab application with its own.
LAB_APPS = {"jupyterlab": "LabApp", "notebook": "JupyterNotebookApp"}
# Server extensions installed with JupyterLab and Notebook 7 that a plain ``jupyter_server`` test server
# (REST, WebSocket and kernels) never uses; loading them was about 40% of the CPU its start takes.
# A config that names one in ``ServerApp.jpserver_extensions`` decides for it.
FRONT_END_EXTENSIONS = ("jupyterlab", "notebook", "notebook_shim", "jupyter_lsp", "nbdime")
LAB_CONFIG = {"news_url": None}  # JSON null: None on the command line would be the string "None"
# User settings: never ask about or fetch news; no autosave, so what is on disk is what a test saved.
LAB_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


class ServerProcess:
    """``jupyter server`` on 127.0.0.1 with its own Jupyter dirs under ``root``.

    ``app="jupyterlab"`` runs JupyterLab instead (``python -m jupyterlab``) with the same dirs,
    token and extension config, for browser tests; open ``lab_url(path)`` in the browser. Kernels
    inherit ``JUPYTER_RUNTIME_DIR``, so notebook code finds the server through
    ``jupyter_server.serverapp.list_running_servers()``. A plain ``jupyter server`` loads none of
    the front ends' server extensions (``FRONT_END_EXTENSIONS``) unless ``config`` enables them.
    """

    def __init__(
        self,
        root: Path,
        *,
        cloudws_config: dict[str, Any] | None = None,
        token: str = "test-token",
        app: str = "jupyter_server",
        config: dict[str, Any] | None = None,
        env: dict[str, str | None] | None = None,
    ) -> None:
        if app not in ("jupyter_server", "jupyterlab", "notebook"):
            raise ValueError(f"app must be 'jupyter_server', 'jupyterlab' or 'notebook', not {app!r}")
        self.root = root
        self.token = token
        self.cloudws_config = cloudws_config or {}
        self.config = config or {}  # more sections of jupyter_server_config, e.g. {"LocalBackend": {...}}
        self.app = app
        # Changes to the server's environment (inherited from this process): None removes a variable.
        self.env = dict(env or {})
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cloudws/api"

    @property
    def url(self) -> str:
        """The server's base URL, ending in ``/``."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def work_dir(self) -> Path:
        """The server's root_dir: notebooks and files the browser sees."""
        return self.root / "work"

    def lab_url(self, path: str = "", workspace: str | None = None) -> str:
        """JupyterLab's page for ``path`` (relative to ``work_dir``; empty: the Launcher), with the token.
        A ``workspace`` name keeps the page's layout apart from other pages' (else: "default")."""
        page = f"lab/workspaces/{workspace}" if workspace else "lab"
        if path:
            page += f"/tree/{path.lstrip('/')}"
        return f"{self.url}{page}?token={self.token}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def start(
        self, timeout_s: float = 30.0, port: int | None = None, *, ready_path: str = "", _port_tries: int = 3
    ) -> ServerProcess:
        """Start on ``port`` (default: a free one); a restart on the old port keeps the URL clients know.
        Ready once the extension's status answers, or, with ``ready_path``, that server path
        (e.g. ``api/status`` for a server whose extension is expected to fail)."""
        self.port = port or free_port()
        for sub in ("config", "data", "runtime", "work"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        server_config: dict[str, Any] = {**self.config, "CloudWorkspaces": self.cloudws_config}
        if self.app in LAB_APPS:
            if self.app == "jupyterlab":
                server_config["LabApp"] = LAB_CONFIG
            self._write_lab_settings()
            self._link_labextension()
        else:
            section = dict(server_config.get("ServerApp", {}))
            off = {name: False for name in FRONT_END_EXTENSIONS}
            section["jpserver_extensions"] = {**off, **section.get("jpserver_extensions", {})}
            server_config["ServerApp"] = section
        (self.root / "config" / "jupyter_server_config.json").write_text(json.dumps(server_config))
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.root / "config"),
            "JUPYTER_DATA_DIR": str(self.root / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
        }
        # A blocking Modal call in the server's event loop would stall it: make it an error there.
        strict = self.cloudws_config.get("backend") == "modal"
        launcher = ["-m", "jupyter_cloudws.testing.server_main"]
        launcher += ["jupyter_cloudws.testing.strict_modal", self.app] if strict else [self.app]
        for name, value in self.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        argv = [
            sys.executable, *launcher, "--no-browser", "--allow-root", f"--port={self.port}",
            "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root / 'work'}",
        ]  # fmt: skip
        if self.app in LAB_APPS:
            section = LAB_APPS[self.app]
            argv += [
                *(LAB_ARGS if self.app == "jupyterlab" else NOTEBOOK_ARGS),
                f"--{section}.workspaces_dir={self.root / 'lab' / 'workspaces'}",
                f"--{section}.user_settings_dir={self.root / 'lab' / 'user-settings'}",
            ]  # fmt: skip
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child holds it
        logged_before = log.tell()
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if port is None and self._lost_port(logged_before) and _port_tries > 1:
                    # free_port() let its port go before the server could bind it, and another
                    # process took it meanwhile (likelier with test workers side by side): a new one.
                    return self.start(timeout_s, ready_path=ready_path, _port_tries=_port_tries - 1)
                raise RuntimeError(f"jupyter server exited: {self.log_tail()}")
            try:
                probe = self.url + ready_path if ready_path else self.api_url + "/status"
                if httpx.get(probe, headers=self.headers, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"jupyter server did not answer in {timeout_s} s: {self.log_tail()}")

    def _link_labextension(self) -> None:
        """Serve the lab extension built in this checkout (``jupyter_cloudws/labextension``, which
        ``jlpm build:if-changed`` keeps current), not the copy an earlier ``pip install`` put in the
        environment's share/jupyter: JUPYTER_DATA_DIR comes first on the labextensions path."""
        built = Path(__file__).resolve().parents[1] / "labextension"
        link = self.root / "data" / "labextensions" / "jupyter-cloudws"
        if not (built / "package.json").exists() or link.is_symlink() or link.exists():
            return
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(built, target_is_directory=True)

    def _lost_port(self, logged_before: int) -> bool:
        """Whether the server that just exited could not bind its port (it logged so after ``logged_before``)."""
        with open(self.root / "server.log", "rb") as log:
            log.seek(logged_before)
            return f"port {self.port} is not available".encode() in log.read()

    def _write_lab_settings(self) -> None:
        for plugin, settings in LAB_USER_SETTINGS.items():
            package, name = plugin.rsplit("/", 1)
            path = self.root / "lab" / "user-settings" / package / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # keep what a test (or the user, in the page) changed
                path.write_text(json.dumps(settings))
        (self.root / "lab" / "workspaces").mkdir(parents=True, exist_ok=True)

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
