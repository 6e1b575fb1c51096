"""Durable state of the hub: sessions, the prompt queue, the event log and artifacts.

One class owns the SQLite database (WAL mode). Calls are synchronous and short; the hub makes
them on its event loop on purpose, so that reading a replay and registering a live subscriber
happen with no ``await`` in between (nothing can fall between the two).

Swap it with ``c.CloudWorkspaces.store_class`` for another database; keep the method contract.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from cloudws_sandbox.protocol import EventBody, make_event, validate_event_body

SCHEMA_VERSION = 1
DEFAULT_BUSY_TIMEOUT_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    repo TEXT NOT NULL,
    base_branch TEXT NOT NULL,
    branch TEXT NOT NULL,
    title TEXT NOT NULL,
    model TEXT,
    status TEXT NOT NULL DEFAULT 'idle',
    sandbox_status TEXT NOT NULL DEFAULT 'stopped',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0,
    backend TEXT,
    sandbox_id TEXT,
    sandbox_cursor INTEGER NOT NULL DEFAULT 0,
    snapshot_id TEXT,
    snapshot_at REAL
);
CREATE INDEX IF NOT EXISTS sessions_updated ON sessions (updated_at DESC);
CREATE TABLE IF NOT EXISTS prompts (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    model TEXT,
    client_request_id TEXT,
    author TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    UNIQUE (session_id, client_request_id)
);
CREATE INDEX IF NOT EXISTS prompts_queue ON prompts (session_id, status, position);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
-- events_of_type: one type's events of a session in order, without reading the others' bodies.
-- Here, not in a migration: executescript runs on every open, so an older database gets it too.
CREATE INDEX IF NOT EXISTS events_type ON events (session_id, type, seq);
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS repo_images (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    branch TEXT NOT NULL,
    backend TEXT NOT NULL,
    image_id TEXT,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    steps TEXT NOT NULL DEFAULT '[]',
    requested_by TEXT,
    sandbox_id TEXT,
    created_at REAL NOT NULL,
    built_at REAL,
    duration_s REAL
);
CREATE INDEX IF NOT EXISTS repo_images_key ON repo_images (repo, branch, backend, created_at);
"""

SESSION_FIELDS = (
    "id", "repo", "base_branch", "branch", "title", "model", "status", "sandbox_status",
    "created_at", "updated_at", "archived", "owner", "last_seq",
)  # fmt: skip
_UPDATABLE = {
    "title", "archived", "status", "sandbox_status", "model", "backend", "sandbox_id",
    "sandbox_cursor", "base_branch", "snapshot_id", "snapshot_at",
}  # fmt: skip
# Columns added after schema version 1 shipped: added in place to an older database.
_ADDED_COLUMNS = {
    "sessions": (("snapshot_id", "TEXT"), ("snapshot_at", "REAL")),
    "artifacts": (("updated_at", "REAL"),),
}
PROMPT_ACTIVE = ("queued", "running")
# A prebuilt repository image (``jupyter cloudws prebuild``): one row per build.
IMAGE_STATUSES = ("building", "ready", "failed")
_IMAGE_UPDATABLE = {"image_id", "status", "detail", "steps", "sandbox_id", "built_at", "duration_s"}


class QueueFull(Exception):
    """The session already holds as many waiting prompts as the hub allows."""


class UnknownSession(KeyError):
    """No session has this id."""


def _json_path(key: str) -> str:
    """A top-level field's JSON path (a bound parameter; the name is checked all the same)."""
    if not key.isidentifier():
        raise ValueError(f"not an event field name: {key!r}")
    return f"$.{key}"


def new_id() -> str:
    return uuid.uuid4().hex


class SessionStore:
    """SQLite-backed store. ``path`` of ``":memory:"`` gives a throwaway database for tests."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._depth = 0  # nesting of open transactions
        # Calls run on the server's event loop: a lock held by some other process (a backup, a
        # sqlite3 shell) may stall it this long at most before the call fails instead.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._add_columns()
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def close(self) -> None:
        self._db.close()

    def _add_columns(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            have = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    # -- sessions ---------------------------------------------------------------------------

    def create_session(
        self, *, owner: str, repo: str, base_branch: str, branch: str, title: str, model: str | None,
        session_id: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        sid = session_id or new_id()
        now = time.time()
        self._db.execute(
            "INSERT INTO sessions (id, owner, repo, base_branch, branch, title, model, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, owner, repo, base_branch, branch, title, model, now, now),
        )
        return self.get_session(sid)

    def get_session(self, session_id: str) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise UnknownSession(session_id)
        return _session_row(row)

    def sandbox_record(self, session_id: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT backend, sandbox_id, sandbox_cursor, snapshot_id, snapshot_at FROM sessions WHERE id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            raise UnknownSession(session_id)
        return dict(row)

    def list_sessions(
        self, *, q: str | None = None, archived: bool | None = False, owner: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        where, args = [], []
        if archived is not None:
            where.append("archived = ?")
            args.append(int(archived))
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if q:
            where.append("(title LIKE ? ESCAPE '\\' OR repo LIKE ? ESCAPE '\\')")
            pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            args += [pattern, pattern]
        sql = "SELECT * FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC LIMIT ?"
        return [_session_row(r) for r in self._db.execute(sql, (*args, limit))]

    def session_ids_with_sandboxes(self) -> list[str]:
        rows = self._db.execute("SELECT id FROM sessions WHERE sandbox_id IS NOT NULL")
        return [r["id"] for r in rows]

    def session_ids_with_active_prompts(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT session_id FROM prompts WHERE status IN ('queued', 'running')")
        return [r["session_id"] for r in rows]

    def update_session(self, session_id: str, **changes: Any) -> dict[str, Any]:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
        if changes:
            cols = ", ".join(f"{k} = ?" for k in changes)
            values = [int(v) if isinstance(v, bool) else v for v in changes.values()]
            cur = self._db.execute(
                f"UPDATE sessions SET {cols}, updated_at = ? WHERE id = ?", (*values, time.time(), session_id)
            )
            if cur.rowcount == 0:
                raise UnknownSession(session_id)
        return self.get_session(session_id)

    # -- events -----------------------------------------------------------------------------

    def append_event(
        self, session_id: str, body: EventBody | dict[str, Any], *, sandbox_seq: int | None = None,
        ts: float | None = None,
    ) -> dict[str, Any] | None:  # fmt: skip
        """Log one event under the next ``seq``; return it.

        With ``sandbox_seq`` the event came from the sandbox's own log: it is stored only if that
        number is past the session's sandbox cursor, and the cursor moves in the same transaction,
        so a replayed event is dropped (returns ``None``) and a crash never loses or doubles one.
        """
        data = body.to_dict() if isinstance(body, EventBody) else dict(body)
        validate_event_body(data)
        with self.transaction():
            row = self._db.execute(
                "SELECT last_seq, sandbox_cursor FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise UnknownSession(session_id)
            if sandbox_seq is not None and sandbox_seq <= row["sandbox_cursor"]:
                return None
            event = make_event(data, row["last_seq"] + 1, ts)
            self._db.execute(
                "INSERT INTO events (session_id, seq, type, ts, body) VALUES (?, ?, ?, ?, ?)",
                (session_id, event["seq"], event["type"], event["ts"], json.dumps(event)),
            )
            self._db.execute(
                "UPDATE sessions SET last_seq = ?, updated_at = ?,"
                " sandbox_cursor = COALESCE(?, sandbox_cursor) WHERE id = ?",
                (event["seq"], event["ts"], sandbox_seq, session_id),
            )
        return event

    def events_after(self, session_id: str, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Events with ``seq > after``, oldest first, and whether more follow."""
        rows = self._db.execute(
            "SELECT body FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (session_id, after, limit + 1),
        ).fetchall()
        return [json.loads(r["body"]) for r in rows[:limit]], len(rows) > limit

    def events_of_type(self, session_id: str, kind: str, *, limit: int = -1, newest: bool = False,
                       where: dict[str, str] | None = None, present: tuple[str, ...] = ()) -> list[dict[str, Any]]:  # fmt: skip
        """A session's events of one type (a prompt's ``git`` event, say), oldest first; with
        ``limit`` only that many; ``newest``: the last ones, newest first. ``where`` keeps those
        whose top-level fields have these values, ``present`` those where these fields are set
        (not null, not empty): SQLite picks them, so only the bodies returned are parsed here."""
        # INDEXED BY: without statistics SQLite guesses the primary key (every event of the
        # session) is cheaper, as the index does not hold the bodies; it is not, past a few prompts.
        sql = "SELECT body FROM events INDEXED BY events_type WHERE session_id = ? AND type = ?"
        args: list[Any] = [session_id, kind]
        for key, value in (where or {}).items():
            sql += " AND json_extract(body, ?) = ?"
            args += [_json_path(key), value]
        for key in present:
            sql += " AND COALESCE(json_extract(body, ?), '') != ''"
            args.append(_json_path(key))
        sql += f" ORDER BY seq {'DESC' if newest else 'ASC'} LIMIT ?"
        rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [json.loads(r["body"]) for r in rows]

    def latest_events(self, session_id: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The newest ``limit`` events, oldest first, and whether older ones exist."""
        rows = self._db.execute(
            "SELECT body FROM events WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
            (session_id, limit + 1),
        ).fetchall()
        events = [json.loads(r["body"]) for r in rows[:limit]]
        events.reverse()
        return events, len(rows) > limit

    # -- prompt queue -----------------------------------------------------------------------

    def enqueue_prompt(
        self, session_id: str, *, text: str, model: str | None, client_request_id: str | None,
        author: dict[str, Any], max_queue: int,
    ) -> tuple[dict[str, Any], bool]:  # fmt: skip
        """Queue a prompt; return ``(prompt, created)``. A known ``client_request_id`` returns the
        existing prompt with ``created=False`` and queues nothing."""
        with self.transaction():
            if client_request_id is not None:
                existing = self._db.execute(
                    "SELECT * FROM prompts WHERE session_id = ? AND client_request_id = ?",
                    (session_id, client_request_id),
                ).fetchone()
                if existing is not None:
                    return self._prompt_with_position(existing), False
            self.get_session(session_id)
            active = self._db.execute(
                "SELECT COUNT(*) FROM prompts WHERE session_id = ? AND status IN ('queued', 'running')",
                (session_id,),
            ).fetchone()[0]
            # The first active prompt is in hand (running, or queued while its sandbox starts):
            # only those behind it wait.
            if active > max_queue:
                raise QueueFull(f"the session already has {active - 1} prompts waiting (limit {max_queue})")
            position = self._db.execute(
                "SELECT COALESCE(MAX(position), 0) + 1 FROM prompts WHERE session_id = ?", (session_id,)
            ).fetchone()[0]
            pid = new_id()
            self._db.execute(
                "INSERT INTO prompts (id, session_id, position, text, model, client_request_id, author, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (pid, session_id, position, text, model, client_request_id, json.dumps(author), time.time()),
            )
            row = self._db.execute("SELECT * FROM prompts WHERE id = ?", (pid,)).fetchone()
            return self._prompt_with_position(row), True

    def get_prompt(self, prompt_id: str) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM prompts WHERE id = ?", (prompt_id,)).fetchone()
        if row is None:
            raise KeyError(prompt_id)
        return _prompt_row(row)

    def next_prompt(self, session_id: str) -> dict[str, Any] | None:
        """The prompt to work on: the running one if any (after a restart), else the oldest queued."""
        row = self._db.execute(
            "SELECT * FROM prompts WHERE session_id = ? AND status IN ('running', 'queued')"
            " ORDER BY status = 'running' DESC, position LIMIT 1",
            (session_id,),
        ).fetchone()
        return None if row is None else _prompt_row(row)

    def active_prompts(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM prompts WHERE session_id = ? AND status IN ('queued', 'running') ORDER BY position",
            (session_id,),
        )
        return [_prompt_row(r) for r in rows]

    def set_prompt_status(self, prompt_id: str, status: str) -> None:
        now = time.time()
        column = "started_at" if status == "running" else "finished_at"
        self._db.execute(f"UPDATE prompts SET status = ?, {column} = ? WHERE id = ?", (status, now, prompt_id))

    def active_prompt_count(self, session_id: str) -> int:
        return self._db.execute(
            "SELECT COUNT(*) FROM prompts WHERE session_id = ? AND status IN ('queued', 'running')", (session_id,)
        ).fetchone()[0]

    def _prompt_with_position(self, row: sqlite3.Row) -> dict[str, Any]:
        """The prompt plus its place in line: 0 when running or finished, 1 when next, ..."""
        prompt = _prompt_row(row)
        if prompt["status"] == "queued":
            prompt["queue_position"] = self._db.execute(
                "SELECT COUNT(*) FROM prompts WHERE session_id = ? AND status = 'queued' AND position <= ?",
                (prompt["session_id"], prompt["position"]),
            ).fetchone()[0]
        else:
            prompt["queue_position"] = 0
        return prompt

    # -- artifacts --------------------------------------------------------------------------

    def add_artifact(self, session_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        aid = new_id()
        now = time.time()
        self._db.execute(
            "INSERT INTO artifacts (id, session_id, kind, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (aid, session_id, kind, json.dumps(data), now, now),
        )
        return self.get_artifact(aid)

    def update_artifact(self, artifact_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Replace an artifact's data (a pull request's new state); ``updated_at`` moves."""
        cur = self._db.execute(
            "UPDATE artifacts SET data = ?, updated_at = ? WHERE id = ?", (json.dumps(data), time.time(), artifact_id)
        )
        if cur.rowcount == 0:
            raise KeyError(artifact_id)
        return self.get_artifact(artifact_id)

    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        if row is None:
            raise KeyError(artifact_id)
        return _artifact_row(row)

    def artifacts(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM artifacts WHERE session_id = ? ORDER BY created_at, rowid", (session_id,)
        )
        return [_artifact_row(r) for r in rows]

    # -- prebuilt repository images ------------------------------------------------------------

    def create_repo_image(self, *, repo: str, branch: str, backend: str, requested_by: str | None) -> dict[str, Any]:
        iid = new_id()
        self._db.execute(
            "INSERT INTO repo_images (id, repo, branch, backend, status, requested_by, created_at)"
            " VALUES (?, ?, ?, ?, 'building', ?, ?)",
            (iid, repo, branch, backend, requested_by, time.time()),
        )
        return self.get_repo_image(iid)  # type: ignore[return-value]

    def get_repo_image(self, image_row_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM repo_images WHERE id = ?", (image_row_id,)).fetchone()
        return None if row is None else _image_row(row)

    def update_repo_image(self, image_row_id: str, **changes: Any) -> dict[str, Any]:
        unknown = set(changes) - _IMAGE_UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
        if changes.get("status", "building") not in IMAGE_STATUSES:
            raise ValueError(f"unknown image status {changes['status']!r}")
        if "steps" in changes:
            changes["steps"] = json.dumps(changes["steps"])
        if changes:
            cols = ", ".join(f"{k} = ?" for k in changes)
            self._db.execute(f"UPDATE repo_images SET {cols} WHERE id = ?", (*changes.values(), image_row_id))
        row = self.get_repo_image(image_row_id)
        if row is None:
            raise KeyError(image_row_id)
        return row

    def list_repo_images(
        self, *, backend: str | None = None, repo: str | None = None, branch: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Builds, newest first, filtered by whichever of the keys are given."""
        where, args = [], []
        for name, value in (("backend", backend), ("repo", repo), ("branch", branch), ("status", status)):
            if value is not None:
                where.append(f"{name} = ?")
                args.append(value)
        sql = "SELECT * FROM repo_images" + (" WHERE " + " AND ".join(where) if where else "")
        return [_image_row(r) for r in self._db.execute(sql + " ORDER BY created_at DESC, rowid DESC", args)]

    def delete_repo_image(self, image_row_id: str) -> None:
        self._db.execute("DELETE FROM repo_images WHERE id = ?", (image_row_id,))

    # -- transactions -------------------------------------------------------------------------

    def transaction(self) -> _Transaction:
        """Several calls as one: all of them are stored, or none. Re-entrant: the calls open
        transactions of their own, which join the outermost one."""
        return _Transaction(self)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error; a second process cannot interleave.
    Only the outermost one of nested transactions talks to SQLite."""

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        if self._store._depth == 0:
            self._store._db.execute("BEGIN IMMEDIATE")
        self._store._depth += 1

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._store._depth -= 1
        if self._store._depth == 0:
            self._store._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _session_row(row: sqlite3.Row) -> dict[str, Any]:
    data = {k: row[k] for k in SESSION_FIELDS}
    data["archived"] = bool(data["archived"])
    return data


def _artifact_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["data"] = json.loads(data["data"])
    if data["updated_at"] is None:  # stored before artifacts had the column
        data["updated_at"] = data["created_at"]
    return data


def _image_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["steps"] = json.loads(data["steps"])
    return data


def _prompt_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["author"] = json.loads(data["author"])
    return data
