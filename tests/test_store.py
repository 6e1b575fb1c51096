"""The hub's durable state: sessions, the event log, the prompt queue and artifacts."""

from __future__ import annotations

import itertools
import sqlite3
import types

import pytest

from jupyter_cloudws import store as store_mod
from cloudws_sandbox.protocol import AssistantText, ProtocolError, SandboxStatusEvent, UserMessage
from jupyter_cloudws.store import QueueFull, SessionStore, UnknownSession


@pytest.fixture
def clock(monkeypatch):
    """A store clock that moves one second per reading, so 'newest first' is deterministic."""
    ticks = itertools.count(1_700_000_000)
    monkeypatch.setattr(store_mod, "time", types.SimpleNamespace(time=lambda: float(next(ticks))))
    return ticks


@pytest.fixture
def store():
    s = SessionStore(":memory:")
    yield s
    s.close()


def new_session(store: SessionStore, title: str = "Fix the login bug", repo: str = "octo/widgets", **kw):
    args = dict(owner="ada", repo=repo, base_branch="main", branch="cloudws/x", title=title, model=None)
    args.update(kw)
    return store.create_session(**args)


def enqueue(store, sid, text="do it", crid=None, max_queue=10, **kw):
    return store.enqueue_prompt(
        sid, text=text, model=None, client_request_id=crid, author={"name": "ada"}, max_queue=max_queue, **kw
    )


def titles(sessions):
    return [s["title"] for s in sessions]


# ---------------------------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------------------------


class TestSessions:
    def test_a_new_session_starts_idle_stopped_and_empty(self, store):
        s = new_session(store, session_id="abc", model="opus")
        assert s["id"] == "abc"
        assert (s["status"], s["sandbox_status"], s["archived"], s["last_seq"]) == ("idle", "stopped", False, 0)
        assert (s["repo"], s["base_branch"], s["branch"], s["owner"], s["model"]) == (
            "octo/widgets", "main", "cloudws/x", "ada", "opus",
        )  # fmt: skip
        assert store.get_session("abc") == s
        assert store.sandbox_record("abc") == {"backend": None, "sandbox_id": None, "sandbox_cursor": 0,
                                           "snapshot_id": None, "snapshot_at": None}

    def test_generated_ids_are_unique(self, store):
        assert new_session(store)["id"] != new_session(store)["id"]

    def test_an_unknown_id_raises_unknown_session(self, store):
        with pytest.raises(UnknownSession):
            store.get_session("nope")
        with pytest.raises(UnknownSession):
            store.sandbox_record("nope")

    def test_list_is_newest_first(self, store, clock):
        for t in ("first", "second", "third"):
            new_session(store, title=t)
        assert titles(store.list_sessions()) == ["third", "second", "first"]
        assert titles(store.list_sessions(limit=2)) == ["third", "second"]

    def test_search_matches_title_or_repo(self, store, clock):
        new_session(store, title="Fix the login bug", repo="octo/widgets")
        new_session(store, title="Write docs", repo="octo/login-service")
        new_session(store, title="Bump deps", repo="octo/other")
        assert titles(store.list_sessions(q="login")) == ["Write docs", "Fix the login bug"]
        assert titles(store.list_sessions(q="widgets")) == ["Fix the login bug"]
        assert titles(store.list_sessions(q="LOGIN BUG")) == ["Fix the login bug"]  # case-insensitive
        assert store.list_sessions(q="kubernetes") == []
        assert len(store.list_sessions(q="")) == 3  # empty query means no filter

    def test_percent_in_a_search_is_a_literal_percent(self, store, clock):
        new_session(store, title="Reach 100% coverage")
        new_session(store, title="Reach 1000 coverage")
        assert titles(store.list_sessions(q="100%")) == ["Reach 100% coverage"]
        assert store.list_sessions(q="%") != store.list_sessions()  # '%' alone is not 'everything'
        assert titles(store.list_sessions(q="%")) == ["Reach 100% coverage"]

    def test_underscore_in_a_search_is_a_literal_underscore(self, store, clock):
        new_session(store, title="rename snake_case helpers")
        new_session(store, title="rename snakeXcase helpers")
        assert titles(store.list_sessions(q="e_c")) == ["rename snake_case helpers"]

    def test_backslash_in_a_search_is_a_literal_backslash(self, store, clock):
        new_session(store, title=r"fix C:\temp paths")
        new_session(store, title="fix C:temp paths")
        assert titles(store.list_sessions(q="C:\\t")) == [r"fix C:\temp paths"]

    def test_archived_filter(self, store, clock):
        keep = new_session(store, title="keep")
        old = new_session(store, title="old")
        store.update_session(old["id"], archived=True)
        assert titles(store.list_sessions()) == ["keep"]  # the default hides archived sessions
        assert titles(store.list_sessions(archived=False)) == ["keep"]
        assert titles(store.list_sessions(archived=True)) == ["old"]
        assert titles(store.list_sessions(archived=None)) == ["old", "keep"]
        assert store.get_session(old["id"])["archived"] is True
        assert store.get_session(keep["id"])["archived"] is False

    def test_owner_filter(self, store, clock):
        new_session(store, title="mine", owner="ada")
        new_session(store, title="theirs", owner="bob")
        assert titles(store.list_sessions(owner="bob")) == ["theirs"]

    def test_update_changes_fields_and_bumps_updated_at(self, store, clock):
        s = new_session(store)
        updated = store.update_session(s["id"], title="Renamed", status="running", sandbox_status="ready")
        assert (updated["title"], updated["status"], updated["sandbox_status"]) == ("Renamed", "running", "ready")
        assert updated["updated_at"] > s["updated_at"]
        assert updated["created_at"] == s["created_at"]
        assert store.get_session(s["id"]) == updated

    def test_update_of_the_sandbox_record(self, store):
        s = new_session(store)
        store.update_session(s["id"], backend="local", sandbox_id="sbx-1")
        assert store.sandbox_record(s["id"])["sandbox_id"] == "sbx-1"
        assert store.session_ids_with_sandboxes() == [s["id"]]

    @pytest.mark.parametrize("field", ["owner", "id", "last_seq", "repo", "created_at", "nonsense"])
    def test_update_refuses_fields_that_are_not_updatable(self, store, field):
        s = new_session(store)
        with pytest.raises(ValueError, match=field):
            store.update_session(s["id"], **{field: "x"})
        assert store.get_session(s["id"]) == s

    def test_update_of_an_unknown_session_raises(self, store):
        with pytest.raises(UnknownSession):
            store.update_session("ghost", title="x")
        with pytest.raises(UnknownSession):
            store.update_session("ghost")


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


def fill(store, sid, n):
    return [store.append_event(sid, AssistantText("m1", f"block {i}", i)) for i in range(1, n + 1)]


class TestEvents:
    def test_seq_is_strictly_increasing_from_one(self, store):
        sid = new_session(store)["id"]
        events = [
            store.append_event(sid, UserMessage("m1", "hi")),
            store.append_event(sid, {"type": "sandbox_status", "status": "ready"}),
            store.append_event(sid, AssistantText("m1", "hello"), ts=5.0),
        ]
        assert [e["seq"] for e in events] == [1, 2, 3]
        assert events[2]["ts"] == 5.0
        assert store.get_session(sid)["last_seq"] == 3

    def test_each_session_has_its_own_sequence(self, store):
        a, b = new_session(store)["id"], new_session(store)["id"]
        fill(store, a, 3)
        assert store.append_event(b, SandboxStatusEvent("ready"))["seq"] == 1

    def test_an_invalid_event_is_refused_and_uses_no_seq(self, store):
        sid = new_session(store)["id"]
        with pytest.raises(ProtocolError):
            store.append_event(sid, {"type": "sandbox_status", "status": "on fire"})
        assert store.append_event(sid, SandboxStatusEvent("ready"))["seq"] == 1

    def test_an_event_for_an_unknown_session_raises(self, store):
        with pytest.raises(UnknownSession):
            store.append_event("ghost", SandboxStatusEvent("ready"))

    def test_a_replayed_sandbox_event_is_dropped(self, store):
        sid = new_session(store)["id"]
        first = store.append_event(sid, AssistantText("m1", "one"), sandbox_seq=1)
        second = store.append_event(sid, AssistantText("m1", "two"), sandbox_seq=2)
        assert (first["seq"], second["seq"]) == (1, 2)
        assert store.sandbox_record(sid)["sandbox_cursor"] == 2
        # The bridge reconnects and the sandbox replays from the start.
        assert store.append_event(sid, AssistantText("m1", "one"), sandbox_seq=1) is None
        assert store.append_event(sid, AssistantText("m1", "two"), sandbox_seq=2) is None
        events, _ = store.events_after(sid, 0, 100)
        assert [e["text"] for e in events] == ["one", "two"]
        assert store.get_session(sid)["last_seq"] == 2
        # New sandbox events continue the session's sequence.
        assert store.append_event(sid, AssistantText("m1", "three"), sandbox_seq=3)["seq"] == 3
        assert store.sandbox_record(sid)["sandbox_cursor"] == 3

    def test_hub_events_do_not_move_the_sandbox_cursor(self, store):
        sid = new_session(store)["id"]
        store.append_event(sid, AssistantText("m1", "x"), sandbox_seq=4)
        store.append_event(sid, UserMessage("m2", "next"))
        assert store.sandbox_record(sid)["sandbox_cursor"] == 4
        assert store.append_event(sid, AssistantText("m1", "x"), sandbox_seq=4) is None

    def test_the_cursor_moves_only_together_with_the_event(self, store):
        sid = new_session(store)["id"]
        store.append_event(sid, AssistantText("m1", "one"), sandbox_seq=1)
        # Make the second half of the next append (moving the cursor) fail after the event row
        # is already written: the whole append must be undone, or the event would be doubled
        # (stored now, and stored again when the sandbox replays it).
        store._db.execute(
            "CREATE TEMP TRIGGER fail_cursor BEFORE UPDATE OF sandbox_cursor ON sessions"
            " WHEN NEW.sandbox_cursor = 2 BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
        )
        with pytest.raises(sqlite3.DatabaseError, match="disk trouble"):
            store.append_event(sid, AssistantText("m1", "two"), sandbox_seq=2)
        assert store.sandbox_record(sid)["sandbox_cursor"] == 1
        assert store.get_session(sid)["last_seq"] == 1
        assert [e["text"] for e in store.events_after(sid, 0, 10)[0]] == ["one"]
        # Once the trouble is gone, the replayed event is accepted exactly once.
        store._db.execute("DROP TRIGGER fail_cursor")
        assert store.append_event(sid, AssistantText("m1", "two"), sandbox_seq=2)["seq"] == 2
        assert store.append_event(sid, AssistantText("m1", "two"), sandbox_seq=2) is None

    def test_events_after_pages_oldest_first(self, store):
        sid = new_session(store)["id"]
        fill(store, sid, 5)
        page, more = store.events_after(sid, 0, 2)
        assert ([e["seq"] for e in page], more) == ([1, 2], True)
        page, more = store.events_after(sid, 2, 2)
        assert ([e["seq"] for e in page], more) == ([3, 4], True)
        page, more = store.events_after(sid, 3, 2)
        assert ([e["seq"] for e in page], more) == ([4, 5], False)  # exactly the rest: nothing more
        page, more = store.events_after(sid, 4, 2)
        assert ([e["seq"] for e in page], more) == ([5], False)
        assert store.events_after(sid, 5, 2) == ([], False)

    def test_stored_events_come_back_whole(self, store):
        sid = new_session(store)["id"]
        sent = store.append_event(sid, UserMessage("m1", "héllo ✓", author={"name": "ada"}))
        assert store.events_after(sid, 0, 10)[0] == [sent]

    def test_latest_events_is_the_tail_oldest_first(self, store):
        sid = new_session(store)["id"]
        fill(store, sid, 5)
        events, older = store.latest_events(sid, 2)
        assert ([e["seq"] for e in events], older) == ([4, 5], True)
        events, older = store.latest_events(sid, 5)
        assert ([e["seq"] for e in events], older) == ([1, 2, 3, 4, 5], False)
        events, older = store.latest_events(sid, 50)
        assert ([e["seq"] for e in events], older) == ([1, 2, 3, 4, 5], False)
        assert store.latest_events(new_session(store)["id"], 10) == ([], False)


# ---------------------------------------------------------------------------------------------
# Prompt queue
# ---------------------------------------------------------------------------------------------


class TestPromptQueue:
    def test_enqueue_returns_a_queued_prompt(self, store):
        sid = new_session(store)["id"]
        prompt, created = enqueue(store, sid, text="Add tests", crid="r1")
        assert created is True
        assert (prompt["text"], prompt["status"], prompt["client_request_id"]) == ("Add tests", "queued", "r1")
        assert prompt["author"] == {"name": "ada"}
        assert prompt["queue_position"] == 1
        assert store.get_prompt(prompt["id"])["text"] == "Add tests"

    def test_a_retried_request_does_not_queue_twice(self, store):
        sid = new_session(store)["id"]
        first, created1 = enqueue(store, sid, text="Add tests", crid="r1")
        again, created2 = enqueue(store, sid, text="Add tests", crid="r1")
        assert (created1, created2) == (True, False)
        assert again["id"] == first["id"]
        assert store.active_prompt_count(sid) == 1

    def test_the_same_request_id_in_another_session_is_a_different_prompt(self, store):
        a, b = new_session(store)["id"], new_session(store)["id"]
        pa, _ = enqueue(store, a, crid="r1")
        pb, created = enqueue(store, b, crid="r1")
        assert created is True and pa["id"] != pb["id"]

    def test_prompts_without_request_id_are_never_merged(self, store):
        sid = new_session(store)["id"]
        enqueue(store, sid)
        enqueue(store, sid)
        assert store.active_prompt_count(sid) == 2

    def test_a_full_queue_refuses_more(self, store):
        sid = new_session(store)["id"]
        p1, _ = enqueue(store, sid, crid="r1", max_queue=2)
        p2, _ = enqueue(store, sid, crid="r2", max_queue=2)
        enqueue(store, sid, crid="r3", max_queue=2)
        with pytest.raises(QueueFull, match="2 prompts waiting"):
            enqueue(store, sid, crid="r4", max_queue=2)
        assert store.active_prompt_count(sid) == 3
        # A retry of an accepted prompt is still answered while the queue is full.
        retried, created = enqueue(store, sid, crid="r1", max_queue=2)
        assert (retried["id"], created) == (p1["id"], False)
        # Once one is over, there is room again.
        store.set_prompt_status(p1["id"], "done")
        _, created = enqueue(store, sid, crid="r4", max_queue=2)
        assert created is True

    def test_the_first_prompt_does_not_wait_while_its_sandbox_starts(self, store):
        # Still queued until it is sent, but it is the one in hand, not one waiting behind it.
        sid = new_session(store)["id"]
        enqueue(store, sid, crid="first", max_queue=1)
        _, created = enqueue(store, sid, crid="second", max_queue=1)
        assert created is True
        with pytest.raises(QueueFull):
            enqueue(store, sid, crid="third", max_queue=1)

    def test_a_queue_limit_of_zero_allows_only_the_prompt_in_hand(self, store):
        sid = new_session(store)["id"]
        enqueue(store, sid, crid="first", max_queue=0)
        with pytest.raises(QueueFull):
            enqueue(store, sid, crid="second", max_queue=0)

    def test_enqueue_into_an_unknown_session_raises(self, store):
        with pytest.raises(UnknownSession):
            enqueue(store, "ghost")

    def test_next_prompt_prefers_the_running_one_then_the_oldest_queued(self, store):
        sid = new_session(store)["id"]
        assert store.next_prompt(sid) is None
        p1, _ = enqueue(store, sid, text="one")
        p2, _ = enqueue(store, sid, text="two")
        p3, _ = enqueue(store, sid, text="three")
        assert store.next_prompt(sid)["id"] == p1["id"]
        store.set_prompt_status(p2["id"], "running")  # e.g. a server restart found it running
        assert store.next_prompt(sid)["id"] == p2["id"]
        store.set_prompt_status(p2["id"], "completed")
        store.set_prompt_status(p1["id"], "cancelled")
        assert store.next_prompt(sid)["id"] == p3["id"]
        store.set_prompt_status(p3["id"], "failed")
        assert store.next_prompt(sid) is None

    def test_active_prompts_are_the_queued_and_running_in_order(self, store):
        sid = new_session(store)["id"]
        ids = [enqueue(store, sid, text=t)[0]["id"] for t in ("a", "b", "c", "d")]
        store.set_prompt_status(ids[0], "completed")
        store.set_prompt_status(ids[2], "running")
        active = store.active_prompts(sid)
        assert [p["id"] for p in active] == [ids[1], ids[2], ids[3]]
        assert [p["status"] for p in active] == ["queued", "running", "queued"]
        assert store.active_prompt_count(sid) == 3
        assert store.session_ids_with_active_prompts() == [sid]

    def test_status_changes_record_when_work_started_and_finished(self, store):
        sid = new_session(store)["id"]
        p, _ = enqueue(store, sid)
        assert p["started_at"] is None and p["finished_at"] is None
        store.set_prompt_status(p["id"], "running")
        assert store.get_prompt(p["id"])["started_at"] is not None
        store.set_prompt_status(p["id"], "completed")
        assert store.get_prompt(p["id"])["finished_at"] is not None

    def test_queue_position_counts_waiting_prompts_up_to_and_including_this_one(self, store):
        sid = new_session(store)["id"]
        assert [enqueue(store, sid, crid=f"r{i}")[0]["queue_position"] for i in (1, 2, 3)] == [1, 2, 3]
        first = enqueue(store, sid, crid="r1")[0]
        store.set_prompt_status(first["id"], "running")
        assert enqueue(store, sid, crid="r1")[0]["queue_position"] == 0  # running: not waiting
        assert enqueue(store, sid, crid="r2")[0]["queue_position"] == 1  # next in line now
        assert enqueue(store, sid, crid="r3")[0]["queue_position"] == 2
        assert enqueue(store, sid, crid="r4")[0]["queue_position"] == 3
        store.set_prompt_status(first["id"], "completed")
        assert enqueue(store, sid, crid="r1")[0]["queue_position"] == 0

    def test_unknown_prompt_raises_key_error(self, store):
        with pytest.raises(KeyError):
            store.get_prompt("ghost")


# ---------------------------------------------------------------------------------------------
# Artifacts and persistence
# ---------------------------------------------------------------------------------------------


def test_artifacts_are_kept_per_session_in_order(store, clock):
    a, b = new_session(store)["id"], new_session(store)["id"]
    first = store.add_artifact(a, "diff", {"files": ["README.md"]})
    store.add_artifact(b, "diff", {"files": ["other"]})
    second = store.add_artifact(a, "pr", {"url": "https://example.invalid/pr/1"})
    got = store.artifacts(a)
    assert [x["id"] for x in got] == [first["id"], second["id"]]
    assert got[0] == first
    assert got[1]["data"] == {"url": "https://example.invalid/pr/1"}
    assert store.artifacts(new_session(store)["id"]) == []


def test_everything_survives_closing_and_reopening_the_database(tmp_path):
    path = tmp_path / "state" / "hub.sqlite3"  # the parent directory does not exist yet
    s1 = SessionStore(path)
    sid = new_session(s1, title="Persistent")["id"]
    s1.update_session(sid, sandbox_id="sbx-9", archived=True, snapshot_id="im-3", snapshot_at=5.0)
    s1.append_event(sid, UserMessage("m1", "hi"))
    s1.append_event(sid, AssistantText("m1", "hello"), sandbox_seq=7)
    prompt, _ = enqueue(s1, sid, crid="r1")
    s1.add_artifact(sid, "diff", {"n": 1})
    s1.close()

    s2 = SessionStore(path)
    try:
        session = s2.get_session(sid)
        assert (session["title"], session["archived"], session["last_seq"]) == ("Persistent", True, 2)
        assert s2.sandbox_record(sid) == {"backend": None, "sandbox_id": "sbx-9", "sandbox_cursor": 7,
                                          "snapshot_id": "im-3", "snapshot_at": 5.0}
        events, _ = s2.events_after(sid, 0, 10)
        assert [e["type"] for e in events] == ["user_message", "assistant_text"]
        assert s2.append_event(sid, AssistantText("m1", "dup"), sandbox_seq=7) is None
        assert s2.append_event(sid, SandboxStatusEvent("stopped"))["seq"] == 3
        again, created = enqueue(s2, sid, crid="r1")
        assert (again["id"], created) == (prompt["id"], False)
        assert s2.artifacts(sid)[0]["data"] == {"n": 1}
    finally:
        s2.close()


def test_a_transaction_of_several_calls_stores_all_of_them_or_none(tmp_path):
    store = SessionStore(tmp_path / "atomic.sqlite")
    session = store.create_session(owner="ada", repo="/r.git", base_branch="", branch="cloudws/x", title="t",
                                   model=None)  # fmt: skip
    sid = session["id"]
    with pytest.raises(RuntimeError):
        with store.transaction():
            prompt, _ = store.enqueue_prompt(sid, text="hi", model=None, client_request_id="c1", author={},
                                             max_queue=5)  # fmt: skip
            store.append_event(sid, {"type": "user_message", "message_id": prompt["id"], "text": "hi"})
            raise RuntimeError("crash before the end")
    assert store.next_prompt(sid) is None and store.events_after(sid, 0, 10) == ([], False)

    with store.transaction():
        prompt, _ = store.enqueue_prompt(sid, text="hi", model=None, client_request_id="c1", author={}, max_queue=5)
        store.append_event(sid, {"type": "user_message", "message_id": prompt["id"], "text": "hi"})
    assert store.next_prompt(sid)["id"] == prompt["id"]
    assert [e["type"] for e in store.events_after(sid, 0, 10)[0]] == ["user_message"]
    # Calls outside a transaction still commit on their own.
    store.append_event(sid, {"type": "error", "code": "x", "message": "y"})
    assert SessionStore(tmp_path / "atomic.sqlite").get_session(sid)["last_seq"] == 2


def test_a_lock_held_elsewhere_fails_a_write_after_the_busy_timeout(tmp_path):
    # The store runs on the server's event loop: it may wait for a lock only briefly.
    store = SessionStore(tmp_path / "db.sqlite", busy_timeout_s=0.05)
    assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] == 50
    other = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. a backup or a sqlite3 shell holding the write lock
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            new_session(store)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert new_session(store)["id"]
    store.close()


def test_a_database_from_before_snapshots_gains_their_columns_and_keeps_its_sessions(tmp_path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, owner TEXT NOT NULL, repo TEXT NOT NULL, "
        "base_branch TEXT NOT NULL, branch TEXT NOT NULL, title TEXT NOT NULL, model TEXT, "
        "status TEXT NOT NULL DEFAULT 'idle', sandbox_status TEXT NOT NULL DEFAULT 'stopped', "
        "created_at REAL NOT NULL, updated_at REAL NOT NULL, archived INTEGER NOT NULL DEFAULT 0, "
        "last_seq INTEGER NOT NULL DEFAULT 0, backend TEXT, sandbox_id TEXT, "
        "sandbox_cursor INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO sessions (id, owner, repo, base_branch, branch, title, created_at, updated_at) "
        "VALUES ('s1', 'ada', '/r', 'main', 'cloudws/s1', 'old one', 1, 1);"
    )
    old.commit()
    old.close()
    store = SessionStore(path)
    assert store.get_session("s1")["title"] == "old one"
    store.update_session("s1", snapshot_id="im-1", snapshot_at=2.0)
    assert store.sandbox_record("s1")["snapshot_id"] == "im-1"
    store.close()


def test_repository_images_are_listed_newest_first_and_bad_changes_refused(tmp_path) -> None:
    store = SessionStore(tmp_path / "images.sqlite")
    old = store.create_repo_image(repo="/r", branch="main", backend="local", requested_by="ada")
    new = store.create_repo_image(repo="/r", branch="main", backend="local", requested_by=None)
    store.update_repo_image(old["id"], status="ready", image_id="snap-1", steps=[{"step": "clone"}])
    assert [r["id"] for r in store.list_repo_images(repo="/r", branch="main")] == [new["id"], old["id"]]
    assert store.list_repo_images(status="ready")[0]["steps"] == [{"step": "clone"}]
    with pytest.raises(ValueError, match="cannot update repo"):
        store.update_repo_image(old["id"], repo="/elsewhere")
    with pytest.raises(ValueError, match="unknown image status"):
        store.update_repo_image(old["id"], status="done")
    store.delete_repo_image(new["id"])
    store.close()
    reopened = SessionStore(tmp_path / "images.sqlite")
    assert [r["image_id"] for r in reopened.list_repo_images()] == ["snap-1"]
    reopened.close()
