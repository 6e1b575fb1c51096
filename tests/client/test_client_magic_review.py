"""``%cloudws diff`` and ``%cloudws pr`` in a real IPython shell, against the stub of the hub's
review routes (``review_stub.py``): what they print and display, and the host's refusals as one
clear line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from review_stub import CHANGES, PR, SESSION, TOKEN, Stub, serving_stub

from jupyter_cloudws.client import Changes


@pytest.fixture
def stub() -> Iterator[Stub]:
    with serving_stub() as stub:
        stub.changes = CHANGES
        yield stub


@pytest.fixture
def shell(stub: Stub, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("CLOUDWS_URL", stub.url)
    monkeypatch.setenv("CLOUDWS_TOKEN", TOKEN)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_cloudws")
    magics = shell.find_magic("cloudws").__self__
    magics.session = magics.client.session(SESSION["id"])
    shown: list[object] = []
    monkeypatch.setattr("jupyter_cloudws.magic.display", shown.append)
    shell.shown = shown
    yield shell
    magics.client.close()
    magics._client, magics.session = None, None


def magic(shell: InteractiveShell, line: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    shell.run_line_magic("cloudws", line)
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_diff_displays_the_changes_and_filters_by_path(shell, stub: Stub, capsys):
    magic(shell, "diff", capsys)
    (changes,) = shell.shown
    assert isinstance(changes, Changes) and changes.summary() == "5 files changed +4 −1"
    assert stub.requests[-1][2] == {}

    magic(shell, "diff --prompt m-2 nb", capsys)
    assert [f.path for f in shell.shown[-1]] == ["nb/analysis.ipynb"]
    assert stub.requests[-1][2] == {"prompt": ["m-2"]}

    out, _ = magic(shell, "diff the parser", capsys)
    assert "No changed file at or under the, parser" in out and "%cloudws -- diff" in out
    assert len(shell.shown) == 2

    stub.changes = {**CHANGES, "files": [], "totals": {"files": 0, "additions": 0, "deletions": 0}}
    out, _ = magic(shell, "diff", capsys)
    assert out.strip() == "No changes yet." and len(shell.shown) == 2


def test_diff_of_an_unknown_prompt_is_one_line(shell, capsys):
    out, err = magic(shell, "diff --prompt nope", capsys)
    assert err.strip() == "cloudws: no prompt nope in this session (unknown_prompt, HTTP 404)"


def test_pr_opens_or_links_and_says_which(shell, stub: Stub, capsys):
    stub.pr_answer = (201, {"pull_request": {**PR, "state": "draft"}, "created": True})
    out, _ = magic(shell, 'pr --draft --title "Add a license"', capsys)
    assert out.strip() == f"Opened pull request #7 as a draft: {PR['url']}"
    assert stub.requests[-1][3] == {"title": "Add a license", "draft": True}

    stub.pr_answer = (200, {"pull_request": PR, "created": False})
    out, _ = magic(shell, "pr", capsys)
    assert out.strip() == f"The branch already has pull request #7 (open): {PR['url']}"


def test_a_hosts_refusal_is_one_clear_line(shell, stub: Stub, capsys):
    stub.pr_answer = (422, {"error": "branch_protected", "message": "push declined: protected branch hook"})
    out, err = magic(shell, "pr", capsys)
    assert err.strip() == "cloudws: push declined: protected branch hook (branch_protected, HTTP 422)"
    assert "Traceback" not in out + err
