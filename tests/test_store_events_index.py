"""One type of a session's events is read through an index, by SQLite's own filters: the
``changes`` route parses the one ``git`` event it needs, not every prompt's file lists."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cloudws_sandbox.protocol import AssistantText, GitEvent
from jupyter_cloudws.store import SessionStore


def plan(store: SessionStore, sid: str) -> str:
    """SQLite's plan for the statement ``events_of_type`` runs."""
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.events_of_type(sid, "git", limit=1, newest=True)
    store._db.set_trace_callback(None)
    (select,) = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    return " ".join(str(row[-1]) for row in store._db.execute("EXPLAIN QUERY PLAN " + select).fetchall())


def test_an_older_database_gets_the_index_and_events_of_type_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    SessionStore(path).close()
    with sqlite3.connect(path) as db:  # as a database from before the index
        db.execute("DROP INDEX IF EXISTS events_type")
    store = SessionStore(path)
    sid = store.create_session(owner="ada", repo="/r", base_branch="main", branch="b", title="t", model=None)["id"]
    indexes = {row[0] for row in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "events_type" in indexes
    assert "USING INDEX events_type (session_id=? AND type=?)" in plan(store, sid)
    store.close()


def test_events_of_type_filters_by_field_in_sqlite(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "hub.db")
    sid = store.create_session(owner="ada", repo="/r", base_branch="main", branch="b", title="t", model=None)["id"]
    shas = [f"{n:040x}" for n in range(1, 4)]
    store.append_event(sid, GitEvent("b", "", False, committed=False, message_id="p0"))
    for n, sha in enumerate(shas, start=1):
        store.append_event(sid, GitEvent("b", sha, True, message_id=f"p{n}", before=None if n == 1 else shas[n - 2]))
        store.append_event(sid, AssistantText(f"p{n}", "done"))
    store.append_event(sid, GitEvent("b", "", False, committed=False, message_id="p4"))
    newest = store.events_of_type(sid, "git", limit=1, newest=True, present=("sha",))
    assert [e["sha"] for e in newest] == [shas[2]]
    assert [e["sha"] for e in store.events_of_type(sid, "git", limit=1, present=("sha",))] == [shas[0]]
    (second,) = store.events_of_type(sid, "git", where={"message_id": "p2"})
    assert (second["sha"], second["before"]) == (shas[1], shas[0])
    assert store.events_of_type(sid, "git", where={"message_id": "nope"}) == []
    assert len(store.events_of_type(sid, "git")) == 5
    with pytest.raises(ValueError, match="not an event field name"):
        store.events_of_type(sid, "git", where={"sha') OR ('1": "x"})
