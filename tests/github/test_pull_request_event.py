"""The ``pull_request`` event is the hub's alone, and says one of four states."""

from __future__ import annotations

import json

import pytest

from cloudws_sandbox.protocol import ProtocolError, PullRequestEvent, make_event, parse_bridge_reply, validate_event_body
from jupyter_cloudws.store import SessionStore


def test_a_sandbox_may_not_send_one() -> None:
    event = make_event(PullRequestEvent(1, "https://github.com/o/r/pull/1", "open", "t"), seq=5)
    with pytest.raises(ProtocolError) as caught:
        parse_bridge_reply(json.dumps({"kind": "event", "event": event}))
    assert caught.value.code == "forbidden_event"


@pytest.mark.parametrize("state", ["draft", "open", "merged", "closed"])
def test_the_four_states_are_accepted(state: str) -> None:
    validate_event_body(PullRequestEvent(1, "u", state, "t").to_dict())


def test_another_state_is_refused() -> None:
    with pytest.raises(ProtocolError, match="unknown pull request state 'approved'"):
        validate_event_body(PullRequestEvent(1, "u", "approved", "t").to_dict())


def test_an_older_database_gains_the_artifacts_updated_at_column(tmp_path) -> None:
    path = tmp_path / "old.sqlite"
    old = SessionStore(path)
    old._db.execute("ALTER TABLE artifacts DROP COLUMN updated_at")
    session = old.create_session(owner="a", repo="r", base_branch="", branch="b", title="t", model=None)
    old._db.execute("INSERT INTO artifacts (id, session_id, kind, data, created_at) VALUES ('x', ?, 'k', '{}', 5)",
                    (session["id"],))  # fmt: skip
    old.close()
    store = SessionStore(path)
    assert store.artifacts(session["id"])[0]["updated_at"] == 5  # an old row: its creation time
    updated = store.update_artifact("x", {"state": "merged"})
    assert updated["data"] == {"state": "merged"} and updated["updated_at"] > 5
    assert store.artifacts(session["id"]) == [updated]
    store.close()
