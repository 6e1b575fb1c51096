"""The sandbox's own append-only log: what a hub replays after a reconnect or a restart."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from cloudws_sandbox.protocol import AssistantText, ProtocolError, SandboxStatusEvent, UserMessage
from cloudws_sandbox.eventlog import EventLog


@pytest.fixture
def path(tmp_path):
    return tmp_path / "events.jsonl"


@pytest.fixture
def log(path):
    log = EventLog(path)
    yield log
    log.close()


def lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def events(log: EventLog, after: int = 0) -> list[dict]:
    return list(log.read_after(after))


def test_a_new_log_is_empty(log, path):
    assert events(log) == [] and log.last_seq == 0 and events(log, 0) == []
    assert path.exists()


def test_seq_starts_at_one_with_no_gaps_and_every_event_is_on_disk(log, path):
    seqs = [
        log.append(SandboxStatusEvent("cloning"))["seq"],
        log.append({"type": "sandbox_status", "status": "ready"})["seq"],
        log.append(UserMessage("m1", "Add a README ✓"))["seq"],
    ]
    assert seqs == [1, 2, 3] and log.last_seq == 3
    on_disk = [json.loads(x) for x in lines(path)]
    assert on_disk == events(log)
    assert on_disk[2]["text"] == "Add a README ✓"
    assert all("ts" in e for e in on_disk)


def test_after_returns_what_a_hub_has_not_seen(log):
    for i in range(1, 6):
        log.append(AssistantText("m1", f"t{i}", i))
    assert [e["seq"] for e in events(log, 0)] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in events(log, 3)] == [4, 5]
    assert events(log, 5) == []
    assert events(log, 99) == []
    assert [e["seq"] for e in events(log, -1)] == [1, 2, 3, 4, 5]


def test_reopening_keeps_the_events_and_continues_the_sequence(path):
    first = EventLog(path)
    first.append(SandboxStatusEvent("ready"))
    first.append(UserMessage("m1", "hi"))
    first.close()

    second = EventLog(path)
    try:
        assert [e["type"] for e in events(second)] == ["sandbox_status", "user_message"]
        assert second.last_seq == 2
        assert second.append(AssistantText("m1", "hello"))["seq"] == 3
        assert [json.loads(x)["seq"] for x in lines(path)] == [1, 2, 3]
    finally:
        second.close()


def test_a_torn_last_line_is_dropped_and_later_appends_stay_clean(path):
    first = EventLog(path)
    first.append(SandboxStatusEvent("ready"))
    first.append(UserMessage("m1", "hi"))
    first.close()
    # The daemon died half-way through writing the third event.
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"seq": 3, "ts": 1.0, "type": "assistant_text", "message_id": "m1", "te')

    second = EventLog(path)
    try:
        assert second.last_seq == 2
        assert [e["seq"] for e in events(second)] == [1, 2]
        event = second.append(AssistantText("m1", "hello again"))
        assert event["seq"] == 3
        parsed = [json.loads(x) for x in lines(path)]  # every line parses: no glued-on fragment
        assert [e["seq"] for e in parsed] == [1, 2, 3]
        assert parsed[2]["text"] == "hello again"
    finally:
        second.close()

    third = EventLog(path)
    try:
        assert [e["seq"] for e in events(third)] == [1, 2, 3]
    finally:
        third.close()


def test_listeners_hear_each_event_synchronously_after_it_is_written(log, path):
    heard = []

    def listener(event):
        # By the time anyone is told, the event is already in the file and in memory.
        assert json.loads(lines(path)[-1]) == event
        assert log.last_seq == event["seq"]
        heard.append(event["seq"])

    log.subscribe(listener)
    returned = log.append(SandboxStatusEvent("ready"))
    assert heard == [1]  # before append() returned
    assert returned["seq"] == 1
    log.append(SandboxStatusEvent("stopped"))
    assert heard == [1, 2]


def test_unsubscribed_listeners_hear_nothing_more(log):
    a, b = [], []
    log.subscribe(a.append)
    log.subscribe(b.append)
    log.append(SandboxStatusEvent("ready"))
    log.unsubscribe(a.append)
    log.unsubscribe(a.append)  # twice is harmless
    log.unsubscribe(lambda e: None)  # never subscribed: harmless
    log.append(SandboxStatusEvent("stopped"))
    assert [e["seq"] for e in a] == [1]
    assert [e["seq"] for e in b] == [1, 2]


def test_a_listener_may_unsubscribe_itself_while_being_called(log):
    heard = []

    def once(event):
        heard.append(event["seq"])
        log.unsubscribe(once)

    other = []
    log.subscribe(once)
    log.subscribe(other.append)
    log.append(SandboxStatusEvent("ready"))
    log.append(SandboxStatusEvent("stopped"))
    assert heard == [1]
    assert [e["seq"] for e in other] == [1, 2]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "sandbox_status", "status": "on fire"},
        {"type": "assistant_text", "message_id": "m1"},
        {"type": "gossip"},
    ],
)
def test_an_invalid_body_is_refused_and_nothing_is_written(log, path, body):
    heard = []
    log.subscribe(heard.append)
    with pytest.raises(ProtocolError):
        log.append(body)
    assert events(log) == [] and heard == [] and lines(path) == []
    assert log.append(SandboxStatusEvent("ready"))["seq"] == 1


def test_a_whole_last_event_without_its_newline_is_kept_and_the_next_starts_a_new_line(path):
    first = EventLog(path)
    first.append(SandboxStatusEvent("ready"))
    first.close()
    with open(path, "a", encoding="utf-8") as fh:  # the crash came just before the newline
        fh.write('{"seq":2,"ts":1.0,"type":"sandbox_status","status":"stopped"}')
    second = EventLog(path)
    try:
        assert [e["seq"] for e in events(second)] == [1, 2]
        assert second.append(SandboxStatusEvent("ready"))["seq"] == 3
        assert [json.loads(x)["seq"] for x in lines(path)] == [1, 2, 3]
    finally:
        second.close()


def test_read_after_pages_and_stops_at_the_events_there_when_it_began(log):
    for i in range(1, 8):
        log.append(AssistantText("m1", f"t{i}", i))
    assert [e["seq"] for e in log.read_after(2, limit=3)] == [3, 4, 5]
    reading = log.read_after(5)
    assert next(reading)["seq"] == 6
    log.append(AssistantText("m1", "t8", 8))  # appended mid-read: the next call gets it
    assert [e["seq"] for e in reading] == [7]
    assert [e["seq"] for e in log.read_after(7)] == [8]
    assert len(log) == 8


def test_the_log_holds_an_index_not_the_events(path):
    text = "x" * 200
    with open(path, "w", encoding="utf-8") as fh:
        for seq in range(1, 2001):
            fh.write(json.dumps({"seq": seq, "ts": 1.0, "type": "assistant_text", "message_id": "m1",
                                 "text": text, "index": 1}) + "\n")  # fmt: skip
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        log = EventLog(path)
        held_bytes = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    try:
        assert log.last_seq == 2000
        # The events themselves are ~300 bytes each; an index of seq and offset costs 16.
        assert held_bytes < 2000 * 64, f"{held_bytes} bytes held for 2000 events"
        assert [e["seq"] for e in log.read_after(1998)] == [1999, 2000]
    finally:
        log.close()
