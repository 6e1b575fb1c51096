"""The setup script's output on its way to events, and which scripts are run at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloudws_sandbox import setup_script
from cloudws_sandbox.redaction import REDACTED, Redactor
from cloudws_sandbox.setup_script import OutputBatcher, ScriptRefused, find_setup_script

SECRET = "sk-ant-0123456789abcdef"


def batcher(secrets: tuple[str, ...] = ()) -> tuple[OutputBatcher, list[str]]:
    sent: list[str] = []
    return OutputBatcher(Redactor(secrets), sent.append), sent


def test_a_secret_split_across_two_reads_never_leaves_in_any_event() -> None:
    out, sent = batcher((SECRET,))
    out.feed("token: " + SECRET[:9])
    out.flush()  # the timer fires between the two reads
    out.feed(SECRET[9:] + " ok\n")
    out.finish()
    assert all(SECRET[:9] not in piece and SECRET[9:] not in piece for piece in sent), sent
    assert "".join(sent) == f"token: {REDACTED} ok\n"
    assert out.tail() == f"token: {REDACTED} ok"


def test_lines_go_in_batches_of_bounded_size_and_in_order() -> None:
    out, sent = batcher()
    lines = [f"line {i}\n" for i in range(setup_script.FLUSH_LINES * 3)]
    for line in lines:
        out.feed(line)
    assert len(sent) == 3, "a batch leaves as soon as FLUSH_LINES lines wait"
    long_line = "x" * (setup_script.EVENT_OUTPUT_MAX_CHARS * 2 + 10) + "\n"
    out.feed(long_line)
    out.finish()
    assert max(len(piece) for piece in sent) <= setup_script.EVENT_OUTPUT_MAX_CHARS
    assert "".join(sent) == "".join(lines) + long_line


def test_huge_output_is_cut_with_a_note_and_its_tail_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(setup_script, "STREAMED_MAX_CHARS", 1000)
    out, sent = batcher()
    for i in range(500):
        out.feed(f"output line {i}\n")
    out.finish()
    streamed = "".join(sent)
    assert "output line 0\n" in streamed and "output line 499" not in streamed
    assert "output past 1,000 characters is not shown" in sent[-1]
    assert len(streamed) < 1000 + len(sent[-1]) + 1
    assert out.tail().split("\n") == [f"output line {i}" for i in range(480, 500)]


def test_a_script_that_links_out_of_the_work_tree_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / ".cloudws").mkdir(parents=True)
    outside = tmp_path / "outside.sh"
    outside.write_text("echo hi\n")
    os.symlink(outside, work / ".cloudws" / "setup.sh")
    with pytest.raises(ScriptRefused, match="symlink pointing outside the work tree"):
        find_setup_script(str(work))
    (work / ".cloudws" / "setup.sh").unlink()
    (work / "scripts").mkdir()
    (work / "scripts" / "setup.sh").write_text("echo hi\n")
    os.symlink("../scripts/setup.sh", work / ".cloudws" / "setup.sh")  # inside: fine
    assert find_setup_script(str(work)) == (work / "scripts" / "setup.sh").resolve()
    (work / ".cloudws" / "setup.sh").unlink()
    assert find_setup_script(str(work)) is None
