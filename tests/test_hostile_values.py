"""Hostile values never reach git or the agent's command line.

A repository that looks like an option, a base branch git would not accept, a model name with
more than letters, digits and ``.-_:@/``, a local path outside the directories the admin allows
(or reaching out of them through a symlink): each is a 400 that says what is allowed, and
nothing is created. None of these tests starts a sandbox.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cloudws_sandbox.protocol import MAX_MODEL_CHARS
from support import make_bare_repo


@pytest.fixture
def hub(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["cloudws_hub"]


async def nothing_created(api: Any, hub: Any) -> None:
    assert (await api.get("sessions", archived="all")) == (200, {"sessions": []})
    assert (await api.get("prebuilds")) == (200, {"prebuilds": []})
    sandboxes = Path(hub.backend.root_dir)
    assert not sandboxes.exists() or not any(sandboxes.iterdir()), "a sandbox was started"


def refusal(result: tuple[int, Any], code: str) -> str:
    status, body = result
    assert (status, body["code"]) == (400, code), body
    return body["message"]


# -- repositories ---------------------------------------------------------------------------

HOSTILE_REPOS = [
    "-uX@h:p",
    "--upload-pack=touch {marker}@a:b",
    "--upload-pack=touch {marker}",
    "-oProxyCommand=touch {marker}",
    "--template={tmp}",
    "-{good}",
    "ssh://-oProxyCommand=touch%20{marker}/x.git",
    "git@-oProxyCommand=touch:x.git",
    "-git@example.test:org/x.git",
]


@pytest.mark.parametrize("repo", HOSTILE_REPOS)
async def test_a_repo_that_git_could_read_as_an_option_is_refused(api, hub, make_repo, tmp_path, repo):
    marker = tmp_path / "pwned"
    repo = repo.format(marker=marker, tmp=tmp_path, good=make_repo())
    message = refusal(await api.post("sessions", {"repo": repo}), "bad_repo")
    assert "git URL" in message and "absolute path" in message, "the refusal says what is allowed"
    for route in ("prebuilds", "warm"):  # a repository image's repo is checked as a session's
        assert refusal(await api.post(route, {"repo": repo}), "bad_repo") == message
    await nothing_created(api, hub)
    assert not marker.exists(), "an injected command ran"


@pytest.mark.parametrize("repo", ["https://example.test/org/x.git", "ssh://git@example.test/x.git",
                                  "git@example.test:org/x.git", "git://example.test/x.git"])  # fmt: skip
async def test_ordinary_git_urls_are_still_accepted(api, repo):
    session = await api.new_session(repo)
    assert session["repo"] == repo


# -- base branches --------------------------------------------------------------------------


@pytest.mark.parametrize("base_branch", ["", "main", "feature/parser", "release-1.0", "users/ada/wip", "é"])
async def test_a_base_branch_git_accepts_is_kept(api, make_repo, base_branch):
    session = await api.new_session(make_repo(), base_branch=base_branch)
    assert session["base_branch"] == base_branch


@pytest.mark.parametrize("base_branch", ["-x", "--orphan=x", "--upload-pack=touch /tmp/pwned", "HEAD", "a..b",
                                         "a b", "main\n", "@{-1}", "x.lock", "a:b", "a/", "a//b", ".hidden"])  # fmt: skip
async def test_a_base_branch_git_would_refuse_is_a_400_that_says_why(api, hub, make_repo, base_branch):
    repo = str(make_repo())
    message = refusal(await api.post("sessions", {"repo": repo, "base_branch": base_branch}), "bad_branch")
    assert "git check-ref-format --branch" in message and "empty" in message
    for route in ("prebuilds", "warm"):
        message = refusal(await api.post(route, {"repo": repo, "branch": base_branch}), "bad_branch")
        assert "git check-ref-format --branch" in message
    await nothing_created(api, hub)


# -- models ---------------------------------------------------------------------------------

LONGEST_MODEL = "m" * MAX_MODEL_CHARS
GOOD_MODELS = ["claude-sonnet-4-5", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-7-sonnet@20250219",
               "arn:aws:bedrock:us-east-1:123456789012:inference-profile/x", LONGEST_MODEL]  # fmt: skip
BAD_MODELS = ["-x", "--dangerously-skip-permissions", "opus --verbose", "$(touch /tmp/pwned)", "opus\n", "ü",
              LONGEST_MODEL + "m"]  # fmt: skip


@pytest.mark.parametrize("model", GOOD_MODELS)
async def test_a_good_model_passes_everywhere_under_one_length_limit(api, open_socket, make_repo, model):
    session = await api.new_session(make_repo(), model=model)
    assert session["model"] == model
    # An archived session refuses prompts only after their fields are checked: a 409 here
    # means the model passed, without starting a sandbox.
    assert (await api.patch(f"sessions/{session['id']}", {"archived": True}))[0] == 200
    code, body = await api.post(f"sessions/{session['id']}/prompts", {"text": "hi", "model": model})
    assert (code, body["code"]) == (409, "archived")
    sock = await open_socket(session["id"])
    await sock.send({"type": "prompt", "text": "hi", "model": model})
    assert (await sock.recv())["code"] == "archived"


@pytest.mark.parametrize("model", BAD_MODELS)
async def test_a_bad_model_is_refused_everywhere_with_what_is_allowed(api, hub, open_socket, make_repo, model):
    allowed = "letters, digits and . - _ : @ /"
    message = refusal(await api.post("sessions", {"repo": str(make_repo()), "model": model}), "bad_model")
    assert allowed in message and str(MAX_MODEL_CHARS) in message
    await nothing_created(api, hub)

    session = await api.new_session(make_repo("second"))
    message = refusal(await api.post(f"sessions/{session['id']}/prompts", {"text": "hi", "model": model}), "bad_model")
    assert allowed in message
    sock = await open_socket(session["id"])
    await sock.send({"type": "prompt", "text": "hi", "model": model})
    frame = await sock.recv()
    assert (frame["type"], frame["code"]) == ("error", "bad_model") and allowed in frame["message"]
    assert hub.store.active_prompts(session["id"]) == [] and await api.events(session["id"]) == []


# -- where local repositories may come from -------------------------------------------------


class TestAllowedRoots:
    """``c.CloudWorkspaces.local_repo_roots`` set to one directory."""

    @pytest.fixture
    def allowed_root(self, tmp_path: Path) -> Path:
        root = tmp_path / "allowed"
        root.mkdir()
        return root

    @pytest.fixture
    def cloudws_config(self, allowed_root: Path) -> dict[str, Any]:
        return {"local_repo_roots": [str(allowed_root)]}

    async def test_a_repository_under_an_allowed_root_is_accepted(self, api, allowed_root):
        repo = make_bare_repo(allowed_root, "inside")
        assert (await api.new_session(repo))["repo"] == str(repo)
        assert (await api.new_session(f"file://{repo}"))["repo"] == str(repo)

    @pytest.mark.parametrize("how", ["plain path", "file URL", "dot-dot", "symlink to outside", "symlinked root"])
    async def test_a_repository_outside_the_allowed_roots_is_refused(self, api, hub, tmp_path, allowed_root, how):
        outside = make_bare_repo(tmp_path / "elsewhere", "secret")
        link = allowed_root / "looks-inside.git"
        if how == "symlink to outside":
            link.symlink_to(outside)
            repo = str(link)
        elif how == "symlinked root":  # a directory inside the root that is a link out of it
            (allowed_root / "remotes").symlink_to(outside.parent)
            repo = str(allowed_root / "remotes" / outside.name)
        elif how == "dot-dot":
            repo = str(allowed_root / ".." / "elsewhere" / "remotes" / outside.name)
        elif how == "file URL":
            repo = f"file://{outside}"
        else:
            repo = str(outside)
        assert (Path(repo.removeprefix("file://")) / "HEAD").is_file(), "the path does lead to a repository"
        message = refusal(await api.post("sessions", {"repo": repo}), "repo_outside_roots")
        assert str(allowed_root) in message and "local_repo_roots" in message
        for route in ("prebuilds", "warm"):
            assert refusal(await api.post(route, {"repo": repo}), "repo_outside_roots") == message
        await nothing_created(api, hub)

    async def test_a_symlink_that_stays_inside_the_root_is_followed(self, api, allowed_root):
        repo = make_bare_repo(allowed_root, "real")
        (allowed_root / "alias.git").symlink_to(repo)
        assert (await api.new_session(allowed_root / "alias.git"))["repo"] == str(repo), "stored resolved"


async def test_another_sessions_work_tree_is_never_a_repository(api, hub, tmp_path, cloudws_data_dir):
    # conftest allows all of tmp_path, which holds the hub's data dir too.
    assert cloudws_data_dir.is_relative_to(hub.settings.local_repo_roots[0]) and cloudws_data_dir.is_relative_to(tmp_path)
    work_tree = make_bare_repo(cloudws_data_dir / "sandboxes" / "someone-else", "work")
    refusal(await api.post("sessions", {"repo": str(work_tree)}), "repo_outside_roots")
    assert (await api.get("sessions", archived="all")) == (200, {"sessions": []})


class TestDefaultRoots:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict) -> dict:
        jp_server_config["CloudWorkspaces"].pop("local_repo_roots")
        return jp_server_config

    async def test_the_default_roots_are_the_servers_root_dir_and_home(self, api, hub, jp_root_dir, tmp_path):
        assert hub.settings.local_repo_roots == (str(jp_root_dir), os.path.expanduser("~"))
        inside = make_bare_repo(jp_root_dir, "notebooks-repo")
        assert (await api.new_session(inside))["repo"] == str(inside)
        outside = make_bare_repo(tmp_path / "elsewhere", "x")
        if os.path.realpath(outside).startswith(os.path.realpath(os.path.expanduser("~")) + os.sep):
            pytest.skip("the temporary directory is under this user's home")
        code, body = await api.post("sessions", {"repo": str(outside)})
        assert (code, body["code"]) == (400, "repo_outside_roots"), json.dumps(body)
