"""Values that reach a command line: branch names as git judges them, model names, and git
commands that take a hostile value as data, never as an option."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cloudws_sandbox import gitops
from cloudws_sandbox.gitops import GitError
from cloudws_sandbox.protocol import (
    MAX_MODEL_CHARS,
    ProtocolError,
    branch_name_problem,
    check_branch,
    check_model,
    parse_client_frame,
    parse_prompt,
)


def git_accepts_branch(name: str, cwd: Path) -> bool:
    """The real ``git check-ref-format --branch``, run outside any repository (where it does not
    expand ``@{-N}`` into an earlier branch's name)."""
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(cwd.parent)}
    return subprocess.run(["git", "check-ref-format", "--branch", name], cwd=cwd, env=env,
                          capture_output=True).returncode == 0  # fmt: skip


@pytest.fixture(scope="module")
def outside_git(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("no-repository")


GOOD_BRANCHES = ["main", "feature/x", "release-1.0", "fix_42", "users/ada/wip", "é", "@", "a@b", "x{y}", "a.lock.b",
                 "HEAD/x", "x/HEAD", "v1.2.3", "a]b"]  # fmt: skip
BAD_BRANCHES = ["-x", "--upload-pack=touch /tmp/pwned", "-", "HEAD", "a..b", "..", "a b", "a\tb", "a\nb", "a\x7fb",
                "a~1", "a^", "a:b", "a?b", "a*b", "a[b", "a\\b", "@{-1}", "x@{u}", "a.", ".a", "a/.b", "a/", "/a",
                "a//b", "x.lock", "a/b.lock/c", "a/./b", "."]  # fmt: skip


@pytest.mark.parametrize("name", GOOD_BRANCHES)
def test_good_branch_names_pass_here_and_in_git(name, outside_git):
    assert branch_name_problem(name) is None
    assert git_accepts_branch(name, outside_git)
    assert check_branch(name) == name


@pytest.mark.parametrize("name", BAD_BRANCHES)
def test_bad_branch_names_fail_here_and_in_git(name, outside_git):
    assert branch_name_problem(name) is not None
    assert not git_accepts_branch(name, outside_git)
    with pytest.raises(ProtocolError) as refused:
        check_branch(name)
    assert refused.value.code == "bad_branch"
    assert "check-ref-format" in refused.value.message, "the refusal says what is allowed"


def test_an_empty_base_branch_means_the_default_branch():
    assert check_branch("") == "" and check_branch(None) == ""


@pytest.mark.parametrize("value", [3, ["main"], {"name": "main"}, "m" * 251])
def test_a_base_branch_that_is_not_a_short_string_is_a_bad_request(value):
    with pytest.raises(ProtocolError) as refused:
        check_branch(value)
    assert refused.value.code == "bad_request"


# The characters git's rules are about, and ordinary ones to put them between.
branch_alphabet = st.sampled_from(list("ab/.-@{}~^:?*[]\\ \t\x7fé") + ["lock", "HEAD", ".lock", "@{-1}"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(branch_alphabet, min_size=1, max_size=8).map("".join))
@example("a.lock")
@example("a/.lock/b")
@example("refs/heads/x")
def test_the_branch_rules_agree_with_git_on_any_name(outside_git, name):
    assert (branch_name_problem(name) is None) == git_accepts_branch(name, outside_git), name


GOOD_MODELS = ["opus", "claude-sonnet-4-5", "claude-3-7-sonnet@20250219", "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
               "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc_1", "m" * MAX_MODEL_CHARS]  # fmt: skip
BAD_MODELS = ["-x", "--dangerously-skip-permissions", "a b", "opus;rm -rf ~", "$(touch pwned)", "opus\n", "ü",
              "m" * (MAX_MODEL_CHARS + 1), "a,b", "a=b"]  # fmt: skip


@pytest.mark.parametrize("model", GOOD_MODELS)
def test_good_models_are_accepted_for_sessions_and_prompts(model):
    assert check_model(model) == model
    assert parse_prompt({"text": "hi", "model": model}, max_prompt_bytes=100).model == model
    frame = parse_client_frame(f'{{"type": "prompt", "text": "hi", "model": "{model}"}}', max_prompt_bytes=100)
    assert frame.model == model


@pytest.mark.parametrize("model", BAD_MODELS)
def test_bad_models_are_refused_for_sessions_and_prompts_alike(model):
    for check in (check_model, lambda m: parse_prompt({"text": "hi", "model": m}, max_prompt_bytes=100)):
        with pytest.raises(ProtocolError) as refused:
            check(model)
        assert refused.value.code == "bad_model"
        assert "letters, digits and . - _ : @ /" in refused.value.message, "the refusal says what is allowed"


def test_no_model_means_no_choice():
    assert check_model(None) is None and check_model("") is None
    assert parse_prompt({"text": "hi", "model": ""}, max_prompt_bytes=100).model is None


# -- git takes hostile values as data --------------------------------------------------------


@pytest.mark.parametrize(
    ("repo", "git_says"),
    [
        ("--upload-pack=touch {marker}", "repository '--upload-pack=touch {marker}' does not exist"),
        ("--template={tmp}", "repository '--template={tmp}' does not exist"),
        ("-uX@h:p", "strange hostname '-uX@h' blocked"),
    ],
)
async def test_clone_takes_a_repo_that_looks_like_an_option_as_a_repository(tmp_path, repo, git_says):
    marker = tmp_path / "pwned"
    names = {"marker": marker, "tmp": tmp_path}
    with pytest.raises(GitError) as failed:
        await gitops.clone(repo.format(**names), str(tmp_path / "work" / "repo"))
    # Without "--" git reads the value as an option and takes the destination for the repository.
    assert git_says.format(**names) in str(failed.value)
    assert not marker.exists()


async def test_a_hostile_base_branch_that_reached_the_sandbox_is_refused_before_git_sees_it(tmp_path):
    with pytest.raises(GitError) as failed:
        await gitops.prepare_branch(str(tmp_path), "--orphan=x", "cloudws/abc")
    assert "not a branch name" in str(failed.value)
