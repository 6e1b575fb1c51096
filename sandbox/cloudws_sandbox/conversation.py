"""The agent's conversation, kept with the session rather than the sandbox.

Claude Code keeps each conversation as ``projects/<slug of its cwd>/<session id>.jsonl`` under its
config dir (``CLAUDE_CONFIG_DIR``). The backend gives every sandbox of a session the same config
dir, so a fresh sandbox (after an idle stop, or after one died) finds the earlier transcript; this
module remembers which agent session to resume, and moves its transcript to where the CLI looks
for the new sandbox's work tree, which may lie at another path.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("cloudws_sandbox.conversation")

STATE_FILE = "cloudws-agent.json"
MAX_SLUG_CHARS = 200  # a longer slug gets a hash suffix from the CLI (see docs/claude-code-cli.md)
_SESSION_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def config_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where Claude Code keeps its files in this sandbox."""
    configured = environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured) if configured else Path(environ.get("HOME") or Path.home()) / ".claude"


def project_slug(cwd: str) -> str | None:
    """The name of the CLI's project dir for ``cwd``: every character but ASCII letters and
    digits becomes ``-``. ``None`` past 200 characters, where the CLI appends a hash of its own."""
    slug = re.sub(r"[^a-zA-Z0-9]", "-", cwd)
    return slug if len(slug) <= MAX_SLUG_CHARS else None


def has_messages(transcript: Path) -> bool:
    """Whether the CLI would accept ``transcript`` for ``--resume`` (its own test: a line holding a
    user or assistant message); a missing, empty or garbled file fails it."""
    try:
        with open(transcript, encoding="utf-8", errors="replace") as fh:
            return any('"type":"user"' in line or '"type":"assistant"' in line for line in fh)
    except OSError:
        return False


class Conversation:
    """The session's agent conversation in ``root`` (the CLI's config dir), for an agent in ``cwd``."""

    def __init__(self, root: Path, cwd: str) -> None:
        self.root = root
        self.cwd = cwd
        self.saved_id: str | None = self._load()

    def _load(self) -> str | None:
        try:
            agent_session_id = json.loads((self.root / STATE_FILE).read_text()).get("agent_session_id")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("ignoring unreadable %s: %s", self.root / STATE_FILE, exc)
            return None
        return agent_session_id if isinstance(agent_session_id, str) and _SESSION_ID.match(agent_session_id) else None

    def save(self, agent_session_id: str | None) -> None:
        """Remember the agent session to resume (``None`` forgets it). Written atomically: a
        sandbox killed meanwhile leaves the old file or the new one, never half of one."""
        if agent_session_id == self.saved_id:
            return
        self.saved_id = agent_session_id
        path = self.root / STATE_FILE
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"agent_session_id": agent_session_id}))
            os.replace(tmp, path)
        except OSError as exc:  # the prompt goes on; only a later sandbox would start afresh
            log.warning("could not save the agent session id in %s: %s", path, exc)

    def prepare_resume(self, agent_session_id: str) -> str | None:
        """Put the transcript of ``agent_session_id`` where the CLI looks for this cwd; ``None``
        when it is ready to resume, else why it cannot be."""
        slug = project_slug(self.cwd)
        projects = self.root / "projects"
        name = f"{agent_session_id}.jsonl"
        # Several sandboxes may have left one: the newest is the conversation as it last stood.
        found = sorted(projects.glob(f"*/{name}"), key=_mtime, reverse=True)
        usable = next((path for path in found if has_messages(path)), None)
        if usable is None:
            return "its transcript is missing" if not found else "its transcript holds no messages"
        if slug is None or usable.parent.name == slug:
            return None  # where it belongs (or the CLI finds it by scanning projects/*/)
        target_dir = projects / slug
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            # Moved, not copied: with one copy the CLI's scan of projects/*/ is unambiguous, and
            # the next sandbox finds the conversation as this one leaves it.
            os.replace(usable, target_dir / name)
            extras = usable.with_suffix("")  # sub-agent transcripts and tool results, if any
            if extras.is_dir() and not (target_dir / agent_session_id).exists():
                os.replace(extras, target_dir / agent_session_id)
        except OSError as exc:
            return f"its transcript could not be moved: {exc}"
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
