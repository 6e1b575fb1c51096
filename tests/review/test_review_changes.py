"""``changes`` on the hub: a session's work and one prompt's, diffed from a mirror of real git
repositories (no sandbox: the hub reads only the repository and the ``git`` events)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_fakes import ADA, make_hub
from review_support import BRANCH, Workspace, image, notebook, stream
from support import git, make_bare_repo

from jupyter_cloudws.hub import HubError, Requester
from jupyter_cloudws.review import DiffLimits


@pytest.fixture
def hub(memory_store, fake_backend, tmp_path):
    hub = make_hub(memory_store, fake_backend, data_dir=str(tmp_path / "data"))
    yield hub


@pytest.fixture
def origin(tmp_path) -> Path:
    return make_bare_repo(tmp_path, "project", {"README.md": "# project\n", "src/app.py": "x = 1\n"})


@pytest.fixture
def ws(hub, origin, tmp_path) -> Workspace:
    return Workspace(hub, origin, tmp_path / "work")


def by_path(answer: dict) -> dict[str, dict]:
    return {f["path"]: f for f in answer["files"]}


async def test_the_session_shows_its_branch_against_where_it_left_the_base_and_a_prompt_its_own_work(hub, ws, origin, tmp_path):
    first = await ws.prompt({"notes.txt": "one\ntwo\n", "README.md": "# project\n\nMore.\n"})
    second = await ws.prompt({"notes.txt": "one\n2\nthree\n"})
    # The base branch moves on after the session started: its new work is not the session's.
    other = tmp_path / "other"
    git("clone", "--quiet", str(origin), str(other))
    (other / "upstream.txt").write_text("not ours\n")
    git("add", "--all", cwd=other)
    git("commit", "--quiet", "-m", "upstream", cwd=other)
    git("push", "--quiet", "origin", "HEAD:main", cwd=other)

    session = await hub.changes(ws.sid, ADA)
    assert set(by_path(session)) == {"notes.txt", "README.md"}
    assert session["head"] == {"ref": BRANCH, "sha": ws.head()}
    assert session["base"]["ref"] == "main"
    assert session["base"]["sha"] == git("--git-dir", str(origin), "rev-parse", "main~1")
    assert session["totals"] == {"files": 2, "additions": 5, "deletions": 0}
    notes = by_path(session)["notes.txt"]
    assert (notes["status"], notes["additions"], notes["deletions"], notes["binary"]) == ("added", 3, 0, False)
    assert notes["diff"].startswith("diff --git a/notes.txt b/notes.txt\n") and "+three\n" in notes["diff"]
    assert session["truncated"] is False and notes["diff_truncated"] is False

    only_second = await hub.changes(ws.sid, ADA, second)
    assert only_second["prompt_id"] == second
    assert [(f["path"], f["status"], f["additions"], f["deletions"]) for f in only_second["files"]] == [
        ("notes.txt", "modified", 2, 1)
    ]
    assert "-two\n+2\n+three\n" in only_second["files"][0]["diff"]
    only_first = await hub.changes(ws.sid, ADA, first)
    assert set(by_path(only_first)) == {"notes.txt", "README.md"}
    assert only_first["base"]["sha"] == git("--git-dir", str(origin), "rev-parse", "main~1")
    assert only_first["head"]["sha"] == git("rev-parse", "HEAD~1", cwd=ws.work)


async def test_renames_deletions_and_binary_files(hub, ws):
    await ws.prompt({"data.bin": b"\x00\x01\x02", "story.txt": "".join(f"line {i}\n" for i in range(30))})
    prompt = await ws.prompt({"README.md": None, "data.bin": b"\x00\x09\x02"})
    (ws.work / "chapters").mkdir()
    git("mv", "story.txt", "chapters/story.txt", cwd=ws.work)
    renamed = await ws.prompt({"chapters/story.txt": "".join(f"line {i}\n" for i in range(30)) + "fin\n"})

    files = by_path(await hub.changes(ws.sid, ADA, prompt))
    assert files["README.md"]["status"] == "deleted" and "-# project\n" in files["README.md"]["diff"]
    binary = files["data.bin"]
    assert (binary["binary"], binary["additions"], binary["deletions"]) == (True, None, None)
    assert "Binary files" in binary["diff"]

    (moved,) = (await hub.changes(ws.sid, ADA, renamed))["files"]
    assert (moved["path"], moved["old_path"], moved["status"]) == ("chapters/story.txt", "story.txt", "renamed")
    assert (moved["additions"], moved["deletions"]) == (1, 0)
    assert "rename from story.txt\nrename to chapters/story.txt\n" in moved["diff"]


async def test_a_huge_diff_is_cut_with_a_marker_and_the_files_after_it_keep_theirs(hub, ws):
    big = "".join(f"generated line {i:07d} with some padding to make it longer\n" for i in range(60_000))
    prompt = await ws.prompt({"big.csv": big, "small.txt": "small\n"})
    answer = await hub.changes(ws.sid, ADA, prompt)
    files = by_path(answer)
    cut = files["big.csv"]
    assert cut["diff_truncated"] is True and answer["truncated"] is True
    assert cut["additions"] == 60_000, "the counts stay whole"
    limit = DiffLimits().max_file_diff_bytes
    assert limit // 2 < len(cut["diff"].encode()) <= limit
    assert cut["diff"].endswith("\n"), "cut at a whole line"
    assert files["small.txt"]["diff_truncated"] is False and "+small\n" in files["small.txt"]["diff"]


async def test_past_the_total_budget_later_files_are_marked_without_a_diff(hub, ws):
    hub.review.limits = DiffLimits(max_file_diff_bytes=4096, max_total_diff_bytes=10_000)
    prompt = await ws.prompt({f"f{i}.txt": "x\n" * 2000 for i in range(5)})
    files = (await hub.changes(ws.sid, ADA, prompt))["files"]
    assert [f["path"] for f in files] == [f"f{i}.txt" for i in range(5)]
    assert all(f["diff_truncated"] for f in files)
    assert files[0]["diff"] and files[-1]["diff"] == ""
    assert sum(len(f["diff"].encode()) for f in files) <= 10_000


async def test_a_notebook_is_diffed_cell_by_cell_never_as_json(hub, ws):
    before = notebook(("markdown", "# Analysis\n", []), ("code", "x = 1\nprint(x)\n", [stream("1\n")]),
                      ("code", "old = True\n", []))  # fmt: skip
    after = notebook(("markdown", "# Analysis\n", []), ("code", "x = 2\nprint(x)\n", [stream("2\n"), image()]),
                     ("code", "plot()\n", []), ("markdown", "Done.\n", []))  # fmt: skip
    await ws.prompt({"analysis.ipynb": before})
    prompt = await ws.prompt({"analysis.ipynb": after})
    (nb,) = (await hub.changes(ws.sid, ADA, prompt))["files"]
    assert nb["notebook"] is True and nb["status"] == "modified"
    assert '"cell_type":' not in nb["diff"] and '"outputs":' not in nb["diff"]
    changed = {c["index"]: c for c in nb["cells"]}
    assert 0 not in changed, "an unchanged cell is not listed"
    code = changed[1]
    assert (code["cell_type"], code["status"]) == ("code", "modified")
    assert "-x = 1\n+x = 2\n" in code["source_diff"] and " print(x)\n" in code["source_diff"]
    assert code["outputs"] == "1 output → 2 outputs (stdout, image/png)"
    assert "## cell 2 [code] modified\n" in nb["diff"] and "-x = 1\n+x = 2\n" in nb["diff"]
    assert "outputs: 1 output → 2 outputs (stdout, image/png)" in nb["diff"]
    statuses = sorted((c["cell_type"], c["status"]) for c in nb["cells"] if c["index"] != 1)
    assert ("markdown", "added") in statuses


async def test_an_invalid_notebook_falls_back_to_a_text_diff_with_a_note(hub, ws):
    prompt = await ws.prompt({"broken.ipynb": '{"cells": [ this is not json\n'})
    (nb,) = (await hub.changes(ws.sid, ADA, prompt))["files"]
    assert nb["notebook"] is True and nb["cells"] is None
    assert "not valid notebook JSON" in nb["note"]
    assert "+{\"cells\": [ this is not json\n" in nb["diff"]


async def test_a_commit_that_never_reached_origin_is_a_clear_409(hub, ws):
    await ws.prompt({"a.txt": "a\n"})
    lost = await ws.prompt({"b.txt": "b\n"}, push=False)
    for prompt in (lost, None):
        with pytest.raises(HubError) as info:
            await hub.changes(ws.sid, ADA, prompt)
        assert (info.value.status, info.value.code) == (409, "not_pushed")
        assert "never reached the repository" in info.value.message and "push failed" in info.value.message


async def test_unknown_prompts_and_prompts_without_a_commit(hub, ws, tmp_path):
    with pytest.raises(HubError) as info:
        await hub.changes(ws.sid, ADA, "no-such-prompt")
    assert (info.value.status, info.value.code) == (404, "unknown_prompt")
    # Another session's prompt is unknown here too.
    other = Workspace(hub, ws.session["repo"], tmp_path / "work2")
    theirs = await other.prompt({"x.txt": "x\n"})
    with pytest.raises(HubError) as info:
        await hub.changes(ws.sid, ADA, theirs)
    assert info.value.code == "unknown_prompt"

    waiting, _ = hub.store.enqueue_prompt(ws.sid, text="later", model=None, client_request_id=None,
                                          author={"username": "ada"}, max_queue=10)  # fmt: skip
    answer = await hub.changes(ws.sid, ADA, waiting["id"])
    assert (answer["files"], answer["head"], answer["totals"]["files"]) == ([], None, 0)
    assert (await hub.changes(ws.sid, ADA))["head"] is None, "no prompt has committed yet"


async def test_another_user_cannot_see_the_changes(hub, ws):
    await ws.prompt({"a.txt": "a\n"})
    with pytest.raises(HubError) as info:
        await hub.changes(ws.sid, Requester("mallory"))
    assert (info.value.status, info.value.code) == (404, "unknown_session")
    assert (await hub.changes(ws.sid, Requester("root", is_admin=True)))["files"]


async def test_the_mirror_fetches_only_when_a_commit_is_missing(hub, ws):
    await ws.prompt({"a.txt": "a\n"})
    await hub.changes(ws.sid, ADA)
    mirror = hub.review.mirrors.path_for(ws.session["repo"])
    fetched = git("--git-dir", str(mirror), "rev-parse", f"refs/remotes/origin/{BRANCH}")
    # Origin's branch moves behind the mirror's back; the mirror already has what the events name.
    git("--git-dir", str(ws.session["repo"]), "update-ref", f"refs/heads/{BRANCH}",
        git("rev-parse", "HEAD~1", cwd=ws.work))  # fmt: skip
    await hub.changes(ws.sid, ADA)
    assert git("--git-dir", str(mirror), "rev-parse", f"refs/remotes/origin/{BRANCH}") == fetched
    assert not (mirror / "hooks").exists(), "the mirror has no hooks, not even samples"


async def test_past_the_file_limit_the_rest_are_counted_not_listed(hub, ws):
    hub.review.limits = DiffLimits(max_files=3)
    prompt = await ws.prompt({f"f{i}.txt": f"{i}\n" for i in range(5)})
    answer = await hub.changes(ws.sid, ADA, prompt)
    assert [f["path"] for f in answer["files"]] == ["f0.txt", "f1.txt", "f2.txt"]
    assert answer["totals"] == {"files": 5, "additions": 5, "deletions": 0} and answer["truncated"] is True
    assert all(not f["diff_truncated"] and f["diff"].endswith(f"+{i}\n") for i, f in enumerate(answer["files"]))


async def test_a_base_branch_gone_from_origin_is_a_409_naming_it_not_everything_added(hub, ws, origin):
    prompt = await ws.prompt({"a.txt": "a\n"})
    hub.store.update_session(ws.sid, base_branch="main")
    git("--git-dir", str(origin), "update-ref", "-d", "refs/heads/main")  # deleted on the host
    with pytest.raises(HubError) as info:
        await hub.changes(ws.sid, ADA)
    assert (info.value.status, info.value.code) == (409, "base_missing")
    assert info.value.message.startswith("the base branch 'main' is no longer on the repository")
    # One prompt's changes need no base branch.
    assert [f["path"] for f in (await hub.changes(ws.sid, ADA, prompt))["files"]] == ["a.txt"]


async def test_an_empty_repositorys_first_session_is_all_added(hub, tmp_path):
    empty = tmp_path / "remotes" / "empty.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(empty))
    ws = Workspace(hub, empty, tmp_path / "work-empty")
    hub.store.update_session(ws.sid, base_branch="main")  # main never existed: nothing to diff from
    await ws.prompt({"first.txt": "1\n"})
    await ws.prompt({"second.txt": "2\n"})
    answer = await hub.changes(ws.sid, ADA)
    assert (answer["base"], answer["head"]["sha"]) == (None, ws.head())
    assert sorted((f["path"], f["status"]) for f in answer["files"]) == [("first.txt", "added"), ("second.txt", "added")]
