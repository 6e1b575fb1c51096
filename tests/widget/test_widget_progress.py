"""A spawn's progress steps in the chat's transcript: one block per spawn, updated in place."""

from __future__ import annotations

from test_widget_transcript import ev

from jupyter_cloudws.widget import transcript as transcript_module
from jupyter_cloudws.widget.transcript import Transcript


def progress(seq: int, step: str, state: str, elapsed_ms: int = 0, detail: str = "", output: str = "") -> dict:
    return ev(seq, "sandbox_progress", step=step, state=state, elapsed_ms=elapsed_ms, detail=detail, output=output)


def test_a_spawn_shows_its_steps_as_they_come_and_folds_when_ready():
    t = Transcript()
    t.apply(ev(1, "sandbox_status", status="spawning", detail=""))
    t.apply(progress(2, "start", "running"))
    t.apply(progress(3, "start", "done", 120))
    t.apply(progress(4, "clone", "running", detail="cloning repo"))
    (block,) = t.apply(progress(5, "clone", "done", 800, detail="on branch b from main"))
    assert block["id"] == "p:2" and block["state"] == "running"
    t.apply(progress(6, "setup", "running", 0, detail="running .cloudws/setup.sh"))
    t.apply(progress(7, "setup", "running", 400, output="installing one\n"))
    t.apply(progress(8, "setup", "running", 900, output="installing two\n"))
    setup = t.get("p:2")["steps"][-1]
    assert setup["output"] == "installing one\ninstalling two\n" and setup["state"] == "running"
    assert setup["detail"] == "running .cloudws/setup.sh", "an output event keeps the step's detail"
    t.apply(progress(9, "setup", "done", 1500, detail="exit code 0"))
    t.apply(progress(10, "agent", "running"))
    t.apply(progress(11, "agent", "done", 200))
    changed = t.apply(ev(12, "sandbox_status", status="ready", detail="on branch b"))
    block = t.get("p:2")
    assert [i["id"] for i in changed] == ["p:2"] and block["state"] == "ready"
    assert [(s["step"], s["state"], s["elapsed_ms"]) for s in block["steps"]] == [
        ("start", "done", 120), ("clone", "done", 800), ("setup", "done", 1500), ("agent", "done", 200),
    ]  # fmt: skip
    assert block["total_ms"] == 2620
    assert [i["kind"] for i in t.items] == ["progress"], "one block for the whole spawn"


def test_a_failed_setup_keeps_its_tail_and_the_spawn_still_gets_ready():
    t = Transcript()
    t.apply(progress(1, "clone", "running"))
    t.apply(progress(2, "clone", "done", 300))
    t.apply(progress(3, "setup", "running", output="step 1\n"))
    t.apply(progress(4, "setup", "failed", 700, detail="exit code 3", output="step 1\nnpm ERR! broken"))
    t.apply(ev(5, "sandbox_status", status="ready"))
    setup = t.get("p:1")["steps"][-1]
    assert setup["state"] == "failed" and setup["detail"] == "exit code 3"
    assert setup["tail"] == "step 1\nnpm ERR! broken" and setup["output"] == "step 1\n"
    assert t.get("p:1")["state"] == "ready"


def test_each_spawn_gets_its_own_block_and_a_failed_one_says_so():
    t = Transcript()
    t.apply(progress(1, "clone", "running"))
    t.apply(progress(2, "clone", "failed", 50, detail="git clone failed: not found"))
    t.apply(ev(3, "sandbox_status", status="failed", detail="git clone failed: not found"))
    assert t.get("p:1")["state"] == "failed"
    t.apply(ev(4, "sandbox_status", status="spawning"))
    t.apply(progress(5, "restore", "running"))
    t.apply(ev(6, "sandbox_status", status="ready"))
    assert [i["id"] for i in t.items if i["kind"] == "progress"] == ["p:1", "p:5"]
    assert t.get("p:5")["state"] == "ready" and t.get("p:1")["steps"][0]["state"] == "failed"


def test_a_huge_setup_output_keeps_only_its_end_in_the_widget():
    t = Transcript()
    chunk = "x" * 1000 + "\n"
    for seq in range(1, 200):
        t.apply(progress(seq, "setup", "running", output=chunk))
    output = t.get("p:1")["steps"][0]["output"]
    assert len(output) == transcript_module.MAX_STEP_OUTPUT_CHARS and output.endswith(chunk)


def test_markup_in_progress_output_stays_text():
    t = Transcript()
    hostile = '<img src=x onerror="alert(1)"><script>x()</script>'
    t.apply(progress(1, "setup", "running", detail=hostile, output=hostile + "\n"))
    (block,) = t.apply(progress(2, "setup", "failed", detail=hostile, output=hostile))
    step = block["steps"][0]
    # Text fields only (the widget sets them as textContent): never an "html" field to inject.
    assert "html" not in block and "html" not in step
    assert step["output"] == hostile + "\n" and step["tail"] == hostile and step["detail"] == hostile
