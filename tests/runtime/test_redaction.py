"""Secrets out of streamed text: a secret cut across fragments is redacted before any of it shows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloudws_sandbox.redaction import REDACTED, Redactor, StreamRedactor

KEY = "sk-test-0123456789"


def stream_all(redactor: Redactor, fragments: list[str], stream: object = ("m1", 1)) -> list[str]:
    streaming = StreamRedactor(redactor)
    pieces = [streaming.feed(stream, f) for f in fragments]
    pieces.append(streaming.end(stream))
    return pieces


def test_a_secret_cut_in_two_never_shows_and_nothing_is_lost():
    redactor = Redactor([KEY])
    pieces = stream_all(redactor, ["the key is sk-test-01234", "56789, keep it"])
    assert pieces[0] == "the key is"[: len(pieces[0])] and "sk-test" not in pieces[0]
    assert "".join(pieces) == f"the key is {REDACTED}, keep it"


def test_the_held_back_tail_is_shorter_than_the_longest_secret():
    streaming = StreamRedactor(Redactor([KEY, "another-secret"]))
    assert streaming.feed("s", "x" * 100) == "x" * (100 - len(KEY) + 1)
    assert streaming.end("s") == "x" * (len(KEY) - 1)
    assert streaming.streams() == []


def test_streams_are_held_apart():
    streaming = StreamRedactor(Redactor([KEY]))
    assert streaming.feed(("m1", 1), "a sk-test-") == ""
    assert streaming.feed(("m1", 2), "0123456789") == ""  # not the rest of block 1's secret
    assert streaming.feed(("m1", 1), "0123456789 b" + "." * 20).startswith(f"a {REDACTED} b")
    assert streaming.end(("m1", 2)) == "0123456789"
    assert streaming.streams() == [("m1", 1)]


def test_without_secrets_fragments_pass_straight_through():
    streaming = StreamRedactor(Redactor([None, "short"]))
    assert streaming.feed("s", "sk-") == "sk-" and streaming.end("s") == ""


def test_redaction_is_one_pass_longest_first():
    redactor = Redactor(["abcdefgh", "abcdefghijk"])
    assert redactor.text("xabcdefghijkx abcdefghx") == f"x{REDACTED}x {REDACTED}x"


# Secrets from a small alphabet so they overlap, nest and repeat in the text; no brackets, so
# the marker itself can never complete one.
ALPHABET = "ab-"
secrets_st = st.lists(st.text(ALPHABET, min_size=8, max_size=14), min_size=1, max_size=3)


@st.composite
def text_and_split(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    secrets = draw(secrets_st)
    parts = draw(st.lists(st.one_of(st.sampled_from(secrets), st.text(ALPHABET + "xy ", max_size=12)), max_size=12))
    whole = "".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(whole)), max_size=10)))
    fragments = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)])]
    return secrets, fragments


@settings(max_examples=400, deadline=None)
@given(text_and_split())
def test_any_split_adds_up_to_the_whole_redacted_and_never_shows_a_secret(case):
    secrets, fragments = case
    redactor = Redactor(secrets)
    pieces = stream_all(redactor, fragments)
    assert "".join(pieces) == redactor.text("".join(fragments))
    shown = ""
    for piece in pieces:
        shown += piece
        assert not any(s in shown for s in secrets), (shown, secrets)
