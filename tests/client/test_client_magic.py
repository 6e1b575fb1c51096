"""``%cloudws`` in a real IPython shell against a real server: each command does what its usage
line says, and mistakes print a usage message, not a traceback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_helpers import make_bare_repo, serving, until
from support import git
from IPython.core.interactiveshell import InteractiveShell

from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text, tool_use
from jupyter_cloudws.testing.server import ServerProcess

WAIT_S = 60


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        fake.on("add a license", tool_use("Write", {"file_path": "LICENSE", "content": "MIT\n"}), text("Added."))
        fake.on("bump x", tool_use("Bash", {"command": "sed -i 's/x = 1/x = 2/' app.py analysis.ipynb"}),
                text("x is now 2."))
        fake.on("spin for a while", tool_use("Bash", {"command": "echo spin && sleep 30 && echo end",
                                                       "timeout": 60000}), text("Spun."))  # fmt: skip
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake: FakeAnthropic) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("magic") / "server", fake) as proc:
        yield proc


@pytest.fixture
def shell(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("CLOUDWS_URL", server.url)
    monkeypatch.setenv("CLOUDWS_TOKEN", server.token)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_cloudws")
    yield shell
    magics = shell.find_magic("cloudws").__self__
    if magics._client is not None:
        magics._client.close()
    magics._client, magics.session = None, None


def magic(shell: InteractiveShell, line: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    shell.run_line_magic("cloudws", line)
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_new_prompt_wait_status_list_and_use(shell, capsys, tmp_path: Path):
    repo = make_bare_repo(tmp_path, "licensed")
    out, _ = magic(shell, f"new {repo} --title 'License work' --model haiku", capsys)
    assert "is current" in out and "cloudws/" in out
    session = shell.find_magic("cloudws").__self__.session
    assert (session.title, session.model) == ("License work", "haiku")

    magic(shell, "--wait Please add a license", capsys)
    assert [e.text for e in session.events if e.type == "assistant_text"] == ["Added."]
    assert session.events[-1].success is True

    out, _ = magic(shell, "status", capsys)
    assert "License work" in out and f"branch:  {session.branch}" in out and "sandbox: ready" in out
    out, _ = magic(shell, "list", capsys)
    line = next(row for row in out.splitlines() if session.id[:8] in row)
    assert line.startswith("*") and "License work" in line and "just now" in line

    out, _ = magic(shell, "new " + str(make_bare_repo(tmp_path, "other")), capsys)
    assert shell.find_magic("cloudws").__self__.session.id != session.id
    out, _ = magic(shell, f"use {session.id[:6]}", capsys)
    assert "License work" in out and shell.find_magic("cloudws").__self__.session.id == session.id


def test_a_prompt_returns_at_once_and_stop_interrupts_it(shell, capsys, tmp_path: Path):
    magic(shell, f"new {make_bare_repo(tmp_path, 'spinning')}", capsys)
    session = shell.find_magic("cloudws").__self__.session
    magic(shell, "Please spin for a while", capsys)  # returns without waiting
    until(lambda: any(e.type == "tool_call" and e.status == "running" for e in session.events), WAIT_S, "the tool")
    out, _ = magic(shell, "stop", capsys)
    assert "Stopping" in out
    until(lambda: any(e.type == "execution_complete" for e in session.events), 20, "the stop")
    assert session.events[-1].interrupted is True


def test_mistakes_give_clear_messages_not_tracebacks(shell, capsys, tmp_path: Path):
    out, err = magic(shell, "help", capsys)
    assert "%cloudws new REPO" in out
    for line in ("use", "new", f"new {tmp_path} --bogus"):
        shell.run_cell(f"%cloudws {line}")  # as a notebook cell runs it
        captured = capsys.readouterr()
        output = captured.err + captured.out
        assert "UsageError" in output and "Traceback" not in output
        assert "%cloudws new REPO" in output
    out, err = magic(shell, f"new {tmp_path / 'nowhere'}", capsys)
    assert "cloudws: " in err and "not a git repository" in err and "Traceback" not in err
    shell.run_cell("%cloudws use ffffffffffff")
    captured = capsys.readouterr()
    assert "no session id starts with" in captured.err + captured.out


def test_panel_opens_the_current_session_in_the_side_panel_and_chat_shows_it_in_the_cell(
    shell, capsys, tmp_path: Path, monkeypatch
):
    from jupyter_cloudws import magic as magic_module
    from jupyter_cloudws.widget import ChatWidget
    from jupyter_cloudws.widget.panel import PANEL_MIME_TYPE

    shown: list[object] = []
    monkeypatch.setattr(magic_module, "display", shown.append)
    for line in ("panel", "chat"):  # both need a current session: a usage message says how to get one
        shell.run_cell(f"%cloudws {line}")
        captured = capsys.readouterr()
        assert "no current session" in captured.err + captured.out and "Traceback" not in captured.err
    assert shown == []

    magic(shell, f"new {make_bare_repo(tmp_path, 'paneled')}", capsys)
    session = shell.find_magic("cloudws").__self__.session
    before_s = time.time()
    magic(shell, "panel", capsys)
    bundle = shown.pop()._repr_mimebundle_()
    # What the lab extension's renderer reads (src/mime.ts): the id, and when, so that only a
    # fresh output opens the panel; no widget, so no kernel is needed to show it.
    assert bundle[PANEL_MIME_TYPE]["session_id"] == session.id
    assert before_s <= bundle[PANEL_MIME_TYPE]["created_s"] <= time.time()
    assert bundle["text/plain"] == f"Opened session {session.id} in the Claude Code panel (JupyterLab's right sidebar)"
    assert json.loads(json.dumps(bundle)) == bundle

    magic(shell, "chat", capsys)
    widget = shown.pop()
    assert isinstance(widget, ChatWidget) and widget.current is session
    magic(shell, "chat", capsys)
    assert shown.pop() is widget, "one chat model per session: a second display is a second view"


def test_checkout_brings_the_sessions_branch_into_the_notebooks_clone(shell, capsys, tmp_path: Path, monkeypatch):
    repo = make_bare_repo(tmp_path, "homecoming")
    magic(shell, f"new {repo}", capsys)
    session = shell.find_magic("cloudws").__self__.session
    magic(shell, "--wait Please add a license", capsys)
    clone = tmp_path / "mine" / "homecoming"
    git("clone", "--quiet", str(repo), str(clone))
    (clone / "notebooks").mkdir()
    monkeypatch.chdir(clone / "notebooks")  # where the kernel of a notebook in the clone runs

    out, err = magic(shell, "checkout --no-switch", capsys)
    assert out.startswith(f"Fetched origin/{session.branch}") and not err
    assert git("symbolic-ref", "--short", "HEAD", cwd=clone) == "main" and not (clone / "LICENSE").exists()

    (clone / "LICENSE").write_text("my own license\n")  # untracked, and the session's branch adds it
    out, err = magic(shell, "checkout", capsys)
    assert err.startswith("cloudws: you have uncommitted changes in files the switch") and "LICENSE" in err
    assert (clone / "LICENSE").read_text() == "my own license\n"

    (clone / "LICENSE").unlink()
    out, err = magic(shell, "checkout", capsys)
    assert out.startswith(f"Switched {clone} to {session.branch}") and not err
    assert (clone / "LICENSE").read_text() == "MIT\n"
    assert git("symbolic-ref", "--short", "HEAD", cwd=clone) == session.branch


def test_diff_and_session_changes_show_a_prompts_code_and_notebook_changes(shell, capsys, tmp_path: Path):
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "c0", "metadata": {}, "execution_count": 1, "source": ["x = 1\n", "print(x)\n"],
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]}]}  # fmt: skip
    repo = make_bare_repo(tmp_path, "bumped", {"app.py": "x = 1\nprint(x)\n", "analysis.ipynb": json.dumps(notebook)})
    magic(shell, f"new {repo}", capsys)
    session = shell.find_magic("cloudws").__self__.session
    magic(shell, "--wait Please bump x", capsys)
    prompt_id = next(e.message_id for e in session.events if e.type == "user_message")

    changes = session.changes()
    assert [f.path for f in changes] == ["analysis.ipynb", "app.py"]
    assert changes.head.ref == session.branch and changes.base.sha == git("--git-dir", str(repo), "rev-parse", "main")
    assert "-x = 1\n+x = 2\n" in changes["app.py"].diff
    (cell,) = changes["analysis.ipynb"].cells
    assert (cell.index, cell.cell_type, cell.status) == (0, "code", "modified") and "+x = 2" in cell.source_diff
    assert session.changes(prompt=prompt_id).totals == changes.totals
    assert "app.py (modified, +1 −1)" in changes._repr_html_()

    out, err = magic(shell, "diff", capsys)
    assert out.strip() == f"<cloudws.Changes {changes.summary()}>" and not err
    out, err = magic(shell, f"diff --prompt {prompt_id} app.py", capsys)
    assert out.strip() == "<cloudws.Changes 1 file changed +1 −1>" and not err
    out, err = magic(shell, "diff --prompt not-a-prompt", capsys)
    assert err.startswith("cloudws: ") and "unknown_prompt, HTTP 404" in err and "Traceback" not in err
