"""How %cloudws reads what the user typed: commands when they fit, prompts otherwise."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from jupyter_cloudws.magic import USAGE, Command, parse_command


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", Command("help")),
        ("help", Command("help")),
        ("--help", Command("help")),
        ('new /repos/app.git --branch dev --model opus --title "Fix the parser"',
         Command("new", {"repo": "/repos/app.git", "base_branch": "dev", "model": "opus", "title": "Fix the parser"})),
        ("new https://example.test/app.git", Command("new", {"repo": "https://example.test/app.git",
                                                              "base_branch": None, "model": None, "title": None})),
        ("list", Command("list", {"all": False, "q": None})),
        ("list --all", Command("list", {"all": True, "q": None})),
        ("list parser", Command("list", {"all": False, "q": "parser"})),
        ("use 3fa2", Command("use", {"id": "3fa2"})),
        ("stop", Command("stop")),
        ("status", Command("status")),
        ("panel", Command("panel")),
        ("chat", Command("chat")),
        ("diff", Command("diff", {"prompt": None, "paths": []})),
        ("diff --prompt m-3 src tests/test_x.py", Command("diff", {"prompt": "m-3", "paths": ["src", "tests/test_x.py"]})),
        ('diff "my notes.ipynb"', Command("diff", {"prompt": None, "paths": ["my notes.ipynb"]})),
        ("checkout", Command("checkout", {"switch": True})),
        ("checkout --no-switch", Command("checkout", {"switch": False})),
        ("pr", Command("pr", {"draft": False, "title": None})),
        ('pr --draft --title "Fix the parser"', Command("pr", {"draft": True, "title": "Fix the parser"})),
        ("pr -t Fix", Command("pr", {"draft": False, "title": "Fix"})),
    ],
)
def test_commands(line, expected):
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "text", "wait"),
    [
        ("Fix the failing test in parser.py", "Fix the failing test in parser.py", False),
        ("don't touch the \"tests\" folder", "don't touch the \"tests\" folder", False),
        ("list the files in src and summarize", "list the files in src and summarize", False),
        ("stop using globals in utils.py", "stop using globals in utils.py", False),
        ("stop don't", "stop don't", False),
        ("-- status of the build?", "status of the build?", False),
        ("--wait add type hints", "add type hints", True),
        ("--wait stop", "stop", True),
        ("checkout the parser module and tidy it", "checkout the parser module and tidy it", False),
        ("pr description: write one for me", "pr description: write one for me", False),
        ("pr --draft please", "pr --draft please", False),
        ("diff don't show me", "diff don't show me", False),
        ("-- diff the two parsers", "diff the two parsers", False),
        ("chat about the parser with me", "chat about the parser with me", False),
    ],
)
def test_everything_else_is_a_prompt_taken_verbatim(line, text, wait):
    assert parse_command(line) == Command("prompt", {"text": text, "wait": wait})


def test_the_cell_body_is_the_prompt():
    assert parse_command("", "Refactor this:\n\n    x = 1\n") == Command(
        "prompt", {"text": "Refactor this:\n\n    x = 1", "wait": False}
    )
    assert parse_command("--wait", "go").args["wait"] is True


@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        ("use", None, "one session id"),
        ("use a b", None, "one session id"),
        ("new", None, "required: repo"),
        ("new /r.git --bogus", None, "unrecognized arguments"),
        ("--wait", None, "the prompt is empty"),
        ("--", None, "the prompt is empty"),
        ("stop", "body", "takes only --wait"),
        ("diff --bogus", None, "unrecognized arguments"),
        ("checkout --force", None, "unrecognized arguments"),
        ("pr --title", None, "expected one argument"),
        ("", "   \n", "the prompt is empty"),
    ],
)
def test_wrong_arguments_give_usage_not_a_traceback(line, cell, message):
    with pytest.raises(UsageError) as info:
        parse_command(line, cell)
    assert message in str(info.value)
    assert USAGE.splitlines()[0] in str(info.value)
