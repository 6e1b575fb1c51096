"""``%cloudws`` and ``%%cloudws``: drive Claude Code sessions from notebook cells.

``%load_ext jupyter_cloudws`` registers them. The parsing is a pure function
(:func:`parse_command`), so the grammar is tested without a kernel.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

USAGE = """\
%cloudws new REPO [--branch BASE] [--model MODEL] [--title TITLE]   start a session and make it current
%cloudws PROMPT...            send PROMPT to the current session and show its live chat
%%cloudws [--wait]            (cell magic) the cell body is the prompt
%cloudws --wait PROMPT...     ... and block until Claude has finished
%cloudws -- PROMPT...         a prompt that starts with a command word (e.g. "-- list the files")
%cloudws list [--all] [QUERY] sessions, newest first (--all includes archived ones)
%cloudws use ID               make a session current (a unique prefix of its id is enough)
%cloudws stop                 interrupt the current session's running prompt
%cloudws status               the current session: title, branch, status, sandbox
%cloudws panel                open the current session in the Claude Code side panel (JupyterLab, Notebook 7)
%cloudws chat                 the current session's chat, in this cell
%cloudws diff [--prompt ID] [PATH...]   what the session changed (or one prompt), as highlighted diffs
%cloudws checkout [--no-switch]         fetch the session's branch into this clone and switch to it
%cloudws pr [--draft] [--title TITLE]   push and open a pull request (or link the branch's existing one)
%cloudws help                 this text"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as a UsageError instead of exiting the kernel."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\n\n{USAGE}")


@dataclass(frozen=True)
class Command:
    name: str  # new | prompt | list | use | stop | status | panel | chat | diff | checkout | pr | help
    args: dict[str, Any] = field(default_factory=dict)


COMMAND_WORDS = frozenset({"new", "list", "use", "stop", "status", "panel", "chat", "diff", "checkout", "pr", "help"})


def parse_command(line: str, cell: str | None = None) -> Command:
    """What a ``%cloudws`` line (and, for ``%%cloudws``, its cell body) asks for.

    A prompt is taken verbatim (quotes and apostrophes intact); only a line that starts with a
    command word and fits that command's arguments is a command.
    """
    text = line.strip()
    wait = _starts_with_word(text, "--wait")
    if wait:
        text = text[len("--wait") :].strip()
    if cell is not None:
        if text:
            raise UsageError(f"%%cloudws takes only --wait on its first line; the prompt is the cell body\n\n{USAGE}")
        return _prompt(cell, wait)
    if wait:
        return _prompt(text, wait)  # --wait is for prompts: what follows is never a command
    if _starts_with_word(text, "--"):
        return _prompt(text[2:], wait)
    if not text or text in ("-h", "--help"):
        return Command("help")
    head, _, rest_text = text.partition(" ")
    if head not in COMMAND_WORDS:
        return _prompt(text, wait)
    try:
        rest = shlex.split(rest_text)
    except ValueError:
        rest = None  # unbalanced quotes: "stop don't ..." reads as a sentence, not a command
    command = None if rest is None else _command(head, rest)
    return command if command is not None else _prompt(text, wait)


def _command(head: str, rest: list[str]) -> Command | None:
    """The command when ``rest`` fits ``head``'s arguments; None when the line reads as a prompt."""
    if head == "new":
        parser = _Parser(prog="%cloudws new", add_help=False)
        parser.add_argument("repo")
        parser.add_argument("--branch", "-b", dest="base_branch")
        parser.add_argument("--model", "-m")
        parser.add_argument("--title", "-t")
        return Command("new", vars(parser.parse_args(rest)))
    if head == "use":
        if len(rest) != 1:
            raise UsageError(f"%cloudws use takes one session id\n\n{USAGE}")
        return Command("use", {"id": rest[0]})
    if head == "list":
        query = [w for w in rest if w != "--all"]
        if len(query) <= 1:
            return Command("list", {"all": "--all" in rest, "q": query[0] if query else None})
        return None
    if head == "diff":
        parser = _Parser(prog="%cloudws diff", add_help=False)
        parser.add_argument("--prompt", "-p")
        parser.add_argument("paths", nargs="*")
        return Command("diff", vars(parser.parse_args(rest)))
    if head in ("checkout", "pr"):
        words = [w for i, w in enumerate(rest) if not w.startswith("-") and not (i and rest[i - 1] in ("--title", "-t"))]
        if words:
            return None  # they take no words: "pr review of the parser, please" is a prompt
        parser = _Parser(prog=f"%cloudws {head}", add_help=False)
        if head == "checkout":
            parser.add_argument("--no-switch", dest="switch", action="store_false")
        else:
            parser.add_argument("--draft", action="store_true")
            parser.add_argument("--title", "-t")
        return Command(head, vars(parser.parse_args(rest)))
    if not rest:
        return Command(head)  # stop, status, panel, chat, help
    return None


def _starts_with_word(text: str, word: str) -> bool:
    return text == word or text.startswith(word + " ") or text.startswith(word + "\n")


def _prompt(text: str, wait: bool) -> Command:
    text = text.strip()
    if not text:
        raise UsageError(f"the prompt is empty\n\n{USAGE}")
    return Command("prompt", {"text": text, "wait": wait})


@magics_class
class CloudwsMagics(Magics):
    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._client: Any = None
        self.session: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from .client import connect

            self._client = connect()
        return self._client

    @line_cell_magic
    def cloudws(self, line: str, cell: str | None = None) -> Any:
        command = parse_command(line, cell)
        try:
            return getattr(self, f"_do_{command.name}")(**command.args)
        except UsageError:
            raise
        except Exception as exc:  # a clear line, not a traceback: these are expected failures
            print(f"cloudws: {exc}", file=sys.stderr)
            return None

    def _do_help(self) -> None:
        print(USAGE)

    def _do_new(self, repo: str, base_branch: str | None, model: str | None, title: str | None) -> None:
        self.session = self.client.new_session(repo, base_branch=base_branch, title=title, model=model)
        print(f"Session {self.session.id[:8]} on {self.session.branch} is current. Send a prompt: %cloudws PROMPT")

    def _do_prompt(self, text: str, wait: bool) -> None:
        session = self._current()
        session.prompt(text)
        display(session)
        if wait:
            session.wait()

    def _do_list(self, all: bool, q: str | None) -> None:
        from .widget.format import relative_time

        sessions = self.client.sessions(q=q, archived=None if all else False)
        if not sessions:
            print("No sessions." + ("" if all else " (--all includes archived ones)"))
            return
        for s in sessions:
            mark = "*" if self.session is not None and s.id == self.session.id else " "
            archived = " [archived]" if s.archived else ""
            print(f"{mark} {s.id[:8]}  {s.title[:40]:<40}  {s.status:<8} {relative_time(s.updated_at):>12}  "
                  f"{s.repo}{archived}")  # fmt: skip

    def _do_use(self, id: str) -> None:
        matches = [s for s in self.client.sessions(archived=None) if s.id.startswith(id)]
        if not matches:
            raise UsageError(f"no session id starts with {id!r} (see %cloudws list --all)")
        if len(matches) > 1:
            raise UsageError(f"{id!r} fits {len(matches)} sessions; give more of the id")
        self.session = matches[0]
        print(f"Session {self.session.id[:8]} ({self.session.title}) is current.")

    def _do_stop(self) -> None:
        self._current().stop()
        print("Stopping.")

    def _do_status(self) -> None:
        s = self._current()
        s.refresh()
        print(f"{s.title}  ({s.id})\n  repo:    {s.repo}\n  branch:  {s.branch}\n"
              f"  status:  {s.status}\n  sandbox: {s.sandbox_status}")  # fmt: skip

    def _do_panel(self) -> None:
        from .widget.panel import open_panel

        display(open_panel(self._current()))

    def _do_chat(self) -> None:
        from .widget.panel import widget_for

        display(widget_for(self.client, self._current()))

    def _do_diff(self, prompt: str | None, paths: list[str]) -> None:
        changes = self._current().changes(prompt=prompt)
        shown = changes.only(*paths)
        if paths and not shown.files:
            print(f"No changed file at or under {', '.join(paths)} ({changes.summary()}). To send a prompt that "
                  'starts with "diff", write %cloudws -- diff ...')  # fmt: skip
            return
        if not changes.files:
            print("No changes yet." if prompt is None else f"Prompt {prompt} changed no files.")
            return
        display(shown)

    def _do_checkout(self, switch: bool) -> None:
        print(self._current().checkout(switch=switch))

    def _do_pr(self, draft: bool, title: str | None) -> None:
        pr = self._current().create_pull_request(title=title, draft=draft)
        if pr.created is False:
            print(f"The branch already has pull request #{pr.number} ({pr.state}): {pr.url}")
        else:
            print(f"Opened pull request #{pr.number}{' as a draft' if pr.state == 'draft' else ''}: {pr.url}")

    def _current(self) -> Any:
        if self.session is None:
            raise UsageError("no current session: start one with %cloudws new REPO, or pick one with %cloudws use ID")
        return self.session


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(CloudwsMagics)
