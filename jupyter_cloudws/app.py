"""The jupyter-server extension: ``c.CloudWorkspaces.*`` settings, the hub, its routes."""

from __future__ import annotations

import fcntl
import getpass
import os
import subprocess
from pathlib import Path
from typing import IO, Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Float, Int, List, TraitError, Type, Unicode, default, import_item, validate

from cloudws_sandbox.protocol import ProtocolError, check_model

from . import __version__
from .backends import BACKENDS, SandboxBackend
from .handlers import (
    ChangesHandler,
    EventsHandler,
    PrebuildHandler,
    PrebuildsHandler,
    PromptsHandler,
    SessionHandler,
    SessionsHandler,
    SessionSocketHandler,
    StatusHandler,
    StopHandler,
    WarmHandler,
)
from .github import GitHub
from .github.handlers import (
    ArtifactsHandler,
    GitHubBranchesHandler,
    GitHubReposHandler,
    PullRequestDraftHandler,
    PullRequestHandler,
)
from .hub import HubSettings, SessionHub
from .panel.handlers import PanelSocketHandler
from .store import SessionStore

API_PREFIX = "cloudws/api"
_SESSION = r"(?P<session_id>[^/]+)"  # any id: an unknown one gets a JSON 404 from the hub


class CloudWorkspaces(ExtensionApp):
    name = "jupyter_cloudws"
    extension_url = "/cloudws/api/status"
    load_other_extensions = True

    backend = Unicode(
        "local",
        help="Sandbox backend by name: 'local' (a bubblewrap-isolated process per session on this machine) or "
        "'modal' (a Modal sandbox per session; pip install 'jupyter_cloudws[modal]', settings on "
        "c.ModalBackend). Ignored when backend_class is set.",
    ).tag(config=True)
    backend_class = Type(
        default_value=None,
        klass=SandboxBackend,
        allow_none=True,
        help="A SandboxBackend subclass to use instead of the named backend.",
    ).tag(config=True)
    store_class = Type(
        default_value=SessionStore,
        klass=SessionStore,
        help="The class that owns the database of sessions, prompts, events and artifacts.",
    ).tag(config=True)
    data_dir = Unicode(
        help="Where the SQLite database and the local sandboxes live. Default: <jupyter data dir>/cloudws."
    ).tag(config=True)
    default_model = Unicode(
        "", help="Model for new sessions that do not name one; empty lets Claude Code choose."
    ).tag(config=True)
    agent_env = List(
        Unicode(),
        default_value=["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_OAUTH_TOKEN"],
        help="Names of environment variables passed from the server's environment into each sandbox.",
    ).tag(config=True)
    sandbox_env = Dict(
        value_trait=Unicode(),
        help="Fixed environment variables set in every sandbox (not for secrets: they sit in config).",
    ).tag(config=True)
    allow_local_repos = Bool(
        None,
        allow_none=True,
        help="Accept a plain path or file:// URL as a session's repo. Default: true on the local backend only.",
    ).tag(config=True)
    local_repo_roots = List(
        Unicode(),
        help="Directories a local repository path (or file:// URL) must lie in, after symlinks are "
        "resolved. The hub's data_dir and the backend's sandbox directory are always refused. Default: the server's root_dir and the home "
        "directory of the user running the server.",
    ).tag(config=True)
    max_prompt_bytes = Int(100_000, help="Largest prompt accepted, in UTF-8 bytes.").tag(config=True)
    max_queue_length = Int(20, help="Most prompts a session may have waiting behind the running one.").tag(
        config=True
    )
    sandbox_attach_timeout_s = Float(
        60.0, help="How long a sandbox may take to replay its log when the hub (re)connects."
    ).tag(config=True)
    sandbox_idle_timeout_s = Float(
        600.0,
        min=0.0,
        help="Stop a session's sandbox after this many seconds with no prompt running or queued and "
        "no typing, to free its processes and memory; the next prompt starts a fresh sandbox on the "
        "same branch, and the agent resumes the conversation. A sandbox whose server is gone ends "
        "itself this long (plus a minute) after the server left. 0 keeps sandboxes until archived.",
    ).tag(config=True)
    setup_timeout_s = Float(
        1800.0,
        min=1.0,
        help="The longest a repository's .cloudws/setup.sh may run in a new sandbox (after a clone, or at "
        "a prebuild) before it is stopped; the session is usable either way.",
    ).tag(config=True)
    bridge_heartbeat_s = Float(
        5.0,
        help="How often the hub pings each sandbox it is connected to; 0 turns the heartbeat off.",
    ).tag(config=True)
    bridge_heartbeat_timeout_s = Float(
        20.0,
        help="A sandbox link silent this long (no event, no answer to pings) is taken as lost and "
        "reattached, so a half-open connection is found within seconds.",
    ).tag(config=True)
    websocket_outbox_max_bytes = Int(
        16 * 1024 * 1024,
        help="Most bytes of frames waiting to go to one WebSocket client. A client that falls further "
        "behind is disconnected (close code 4008) and resumes from the last event it has. A side panel's "
        "socket is not disconnected: its chat waits until the browser has read enough.",
    ).tag(config=True)
    db_busy_timeout_s = Float(
        1.0,
        help="Longest wait for a lock on the SQLite database held by another process (a backup, a "
        "sqlite3 shell); the server's event loop waits meanwhile, so keep it short.",
    ).tag(config=True)
    replay_limit = Int(
        500, help="Most events sent in one 'subscribed' frame or one page of GET .../events."
    ).tag(config=True)
    prebuild_repos = List(
        Unicode(),
        help="Repositories whose images the server keeps fresh, as 'REPO' (the default branch) or "
        "'REPO@BRANCH' (split at the last '@' that follows a whole repository). Each is cloned, its "
        ".cloudws/setup.sh run and the sandbox snapshotted; new sessions on it start from that image and "
        "only fetch. Built at start, then every prebuild_interval_s. Needs a backend that can snapshot.",
    ).tag(config=True)
    prebuild_interval_s = Float(
        6 * 3600.0,
        min=0.0,
        help="How often the images of prebuild_repos are rebuilt, in seconds; 0 builds them once, at start.",
    ).tag(config=True)
    prebuild_timeout_s = Float(
        1800.0,
        min=1.0,
        help="Longest a repository prebuild (clone and setup script) may take before it fails and its "
        "sandbox is ended.",
    ).tag(config=True)
    git_email_domain = Unicode(
        "users.noreply.jupyter", help="Commits are authored as <username>@<this domain>."
    ).tag(config=True)
    local_user_name = Unicode(
        help="Who signs commits when jupyter-server knows no user by name (a shared token makes "
        "every request an anonymous user). Default: the server user's git user.name, else the OS user."
    ).tag(config=True)
    local_user_email = Unicode(
        help="Email for those commits. Default: the server user's git user.email, else <OS user>@<git_email_domain>."
    ).tag(config=True)

    @default("local_user_name")
    def _default_local_user_name(self) -> str:
        return _git_config("user.name") or getpass.getuser()

    @default("local_user_email")
    def _default_local_user_email(self) -> str:
        return _git_config("user.email") or f"{getpass.getuser()}@{self.git_email_domain}"

    @default("local_repo_roots")
    def _default_local_repo_roots(self) -> list[str]:
        return [self.serverapp.root_dir, os.path.expanduser("~")]

    @validate("default_model")
    def _check_default_model(self, proposal: Any) -> str:
        try:
            check_model(proposal["value"], "default_model")
        except ProtocolError as exc:
            raise TraitError(exc.message) from None
        return proposal["value"]

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return os.path.join(jupyter_data_dir(), "cloudws")

    def make_backend(self) -> SandboxBackend:
        cls = self.backend_class
        if cls is None:
            if self.backend not in BACKENDS:
                raise ValueError(f"unknown backend {self.backend!r}; known: {', '.join(BACKENDS)}")
            cls = import_item(BACKENDS[self.backend])
        backend = cls(parent=self, log=self.log)
        if hasattr(backend, "root_dir") and not backend.root_dir:
            backend.root_dir = str(Path(self.data_dir) / "sandboxes")
        if hasattr(backend, "hub_instance") and not backend.hub_instance:
            from .backends.modal import hub_instance_id

            backend.hub_instance = hub_instance_id(self.data_dir)
        if hasattr(backend, "hidden_paths"):
            # The server's files are the user's: a sandbox sees only the repository it works on.
            backend.hidden_paths = [*backend.hidden_paths, self.serverapp.root_dir, self.serverapp.runtime_dir]
        return backend

    def initialize_settings(self) -> None:
        check_heartbeat(self.bridge_heartbeat_s, self.bridge_heartbeat_timeout_s)
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)  # transcripts and sandboxes are this user's alone
        self._data_dir_lock = lock_data_dir(Path(self.data_dir))
        backend = self.make_backend()
        allow_local = self.allow_local_repos if self.allow_local_repos is not None else backend.name == "local"
        env = {name: os.environ[name] for name in self.agent_env if name in os.environ}
        env.update(self.sandbox_env)
        settings = HubSettings(
            max_prompt_bytes=self.max_prompt_bytes, max_queue_length=self.max_queue_length,
            replay_limit=self.replay_limit, default_model=self.default_model or None,
            allow_local_repos=allow_local, agent_env=env, secret_names=tuple(self.agent_env),
            attach_timeout_s=self.sandbox_attach_timeout_s, sandbox_idle_timeout_s=self.sandbox_idle_timeout_s,
            setup_timeout_s=self.setup_timeout_s,
            data_dir=self.data_dir, prebuild_timeout_s=self.prebuild_timeout_s,
            bridge_heartbeat_s=self.bridge_heartbeat_s,
            bridge_heartbeat_timeout_s=self.bridge_heartbeat_timeout_s,
            websocket_outbox_max_bytes=self.websocket_outbox_max_bytes,
            local_repo_roots=tuple(os.path.expanduser(r) for r in self.local_repo_roots),
            forbidden_repo_roots=(self.data_dir, *filter(None, [getattr(backend, "root_dir", None)])),
        )  # fmt: skip
        self.store = self.store_class(Path(self.data_dir) / "cloudws.sqlite", busy_timeout_s=self.db_busy_timeout_s)
        self.github = GitHub(parent=self)
        self.hub = SessionHub(self.store, backend, settings, self.github)
        self.settings["cloudws_hub"] = self.hub
        self.settings["cloudws_git_email_domain"] = self.git_email_domain
        self.settings["cloudws_local_user"] = {
            "username": getpass.getuser(), "name": self.local_user_name, "email": self.local_user_email,
        }  # fmt: skip
        self.log.info("jupyter_cloudws %s: %s backend, data in %s", __version__, backend.name, self.data_dir)

    def initialize_handlers(self) -> None:
        api = API_PREFIX
        self.handlers.extend(
            [
                (url_path_join("/", api, "status"), StatusHandler),
                (url_path_join("/", api, "sessions"), SessionsHandler),
                (url_path_join("/", api, "sessions", _SESSION), SessionHandler),
                (url_path_join("/", api, "sessions", _SESSION, "prompts"), PromptsHandler),
                (url_path_join("/", api, "sessions", _SESSION, "stop"), StopHandler),
                (url_path_join("/", api, "sessions", _SESSION, "events"), EventsHandler),
                (url_path_join("/", api, "sessions", _SESSION, "changes"), ChangesHandler),
                (url_path_join("/", api, "sessions", _SESSION, "ws"), SessionSocketHandler),
                (url_path_join("/", api, "prebuilds"), PrebuildsHandler),
                (url_path_join("/", api, "prebuilds", r"(?P<build_id>[^/]+)"), PrebuildHandler),
                (url_path_join("/", api, "warm"), WarmHandler),
                (url_path_join("/", api, "sessions", _SESSION, "pull-request"), PullRequestHandler),
                (url_path_join("/", api, "sessions", _SESSION, "pull-request", "draft"), PullRequestDraftHandler),
                (url_path_join("/", api, "sessions", _SESSION, "artifacts"), ArtifactsHandler),
                (url_path_join("/", api, "github", "repos"), GitHubReposHandler),
                (url_path_join("/", api, "github", "repos", r"(?P<owner>[^/]+)", r"(?P<repo>[^/]+)", "branches"),
                 GitHubBranchesHandler),
                (url_path_join("/", api, "panel"), PanelSocketHandler),
            ]
        )

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        await self.hub.start()
        if self.prebuild_repos:
            # In the background: a build takes minutes, and its errors are logged, never raised.
            self.hub.prebuilds.spawn(self.hub.prebuilds.keep_fresh(list(self.prebuild_repos), self.prebuild_interval_s))

    async def stop_extension(self) -> None:
        # After a failed initialize_settings (e.g. the data_dir in use) some of these were never
        # made; raising here would leave the server unable to stop on SIGTERM.
        if (hub := getattr(self, "hub", None)) is not None:
            await hub.close()
        if (store := getattr(self, "store", None)) is not None:
            store.close()
        if (lock := getattr(self, "_data_dir_lock", None)) is not None:
            lock.close()  # the next server may take over the queues


class DataDirInUse(RuntimeError):
    """Another server drives the sessions in this data_dir."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold ``data_dir/server.lock`` for the server's life: two servers on one data_dir would
    both drive the same queues (and sandboxes). The lock goes with the process, however it ends."""
    fh = open(data_dir / "server.lock", "a+", encoding="utf-8")  # noqa: SIM115 - held until stop
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise DataDirInUse(
            f"{data_dir} is in use by another Jupyter server (pid {holder}); stop it, or give this "
            "server its own c.CloudWorkspaces.data_dir"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def _git_config(key: str) -> str:
    try:
        out = subprocess.run(["git", "config", "--get", key], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def check_heartbeat(heartbeat_s: float, timeout_s: float) -> None:
    """A timeout within one ping interval would declare every quiet sandbox link lost. Checked
    once all configuration is loaded: the two settings may arrive in either order."""
    if heartbeat_s and timeout_s <= heartbeat_s:
        raise TraitError(
            f"CloudWorkspaces.bridge_heartbeat_timeout_s ({timeout_s}) must be longer than "
            f"bridge_heartbeat_s ({heartbeat_s}), or every quiet sandbox link would be taken as lost"
        )
