"""A small tornado app on 127.0.0.1 that answers the review routes (changes, artifacts, pull
requests) with the documented shapes, on a thread of its own; it records what it was asked.

The client's review calls are tested against it for the shapes and the error paths that a real
hub reaches only with a git host misbehaving (a host's refusal, an unknown field added later).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

TOKEN = "stub-token"
SESSION = {
    "id": "s-review-1", "title": "Review", "branch": "cloudws/s-review", "status": "idle", "repo": "/r/app.git",
    "base_branch": "main", "sandbox_status": "ready", "archived": False, "created_at": 1.0, "updated_at": 1.0,
}  # fmt: skip
# The documented shapes, with a field or two the client does not know (a newer hub may add some).
PY_DIFF = "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n-x = 1\n+x = 2\n print(x)\n"
CHANGES = {
    "session_id": SESSION["id"], "prompt_id": None,
    "base": {"ref": "main", "sha": "a" * 40}, "head": {"ref": SESSION["branch"], "sha": "b" * 40},
    "files": [
        {"path": "app.py", "old_path": None, "status": "modified", "additions": 1, "deletions": 1, "binary": False,
         "notebook": False, "diff": PY_DIFF, "diff_truncated": False, "cells": None, "mode": "100644"},
        {"path": "nb/analysis.ipynb", "old_path": None, "status": "added", "additions": 3, "deletions": 0,
         "binary": False, "notebook": True, "diff": "cell 0 (code, added)\n+print('hi')\n", "diff_truncated": False,
         "cells": [{"index": 0, "cell_type": "code", "status": "added", "source_diff": "+print('hi')\n",
                    "outputs": "0 outputs → 1 output (text/plain)", "execution_count": 1}]},
        {"path": "logo.png", "old_path": "img/logo.png", "status": "renamed", "additions": None, "deletions": None,
         "binary": True, "notebook": False, "diff": "", "diff_truncated": False, "cells": None},
    ],
    "totals": {"files": 5, "additions": 4, "deletions": 1}, "truncated": True, "computed_in_ms": 12,
}  # fmt: skip
PR = {
    "id": "art-1", "kind": "pull_request", "number": 7, "url": "https://github.example/o/app/pull/7", "state": "open",
    "title": "Add a license", "base": "main", "head": SESSION["branch"], "created_at": 10.0, "updated_at": 11.0,
    "merged_by": "someone",
}  # fmt: skip


class Stub:
    """What the stub answers (tests change these) and what it was asked."""

    def __init__(self) -> None:
        self.changes: dict[str, Any] = {}
        self.artifacts: list[dict[str, Any]] = []
        self.draft: dict[str, Any] = {"title": "Add a license", "body": "Adds LICENSE."}
        self.pr_answer: tuple[int, dict[str, Any]] = (201, {})
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.url = ""


class _Handler(tornado.web.RequestHandler):
    def initialize(self, stub: Stub) -> None:
        self.stub = stub

    def prepare(self) -> None:
        body = json.loads(self.request.body) if self.request.body else None
        args = {k: [v.decode() for v in vs] for k, vs in self.request.query_arguments.items()}
        self.stub.requests.append((self.request.method, self.request.path, args, body))
        if self.request.headers.get("Authorization") != f"token {TOKEN}":
            self.answer(403, {"code": "forbidden", "message": "bad token"})

    def answer(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class StatusHandler(_Handler):
    def get(self) -> None:
        self.answer(200, {"version": "stub", "backend": "none"})


class SessionHandler(_Handler):
    def get(self, sid: str) -> None:
        self.answer(200, SESSION) if sid == SESSION["id"] else self.answer(404, _unknown(sid))


class ChangesHandler(_Handler):
    def get(self, sid: str) -> None:
        if sid != SESSION["id"]:
            return self.answer(404, _unknown(sid))
        prompt = self.get_query_argument("prompt", None)
        if prompt == "nope":
            return self.answer(404, {"error": "unknown_prompt", "message": "no prompt nope in this session"})
        self.answer(200, {**self.stub.changes, "prompt_id": prompt})


class ArtifactsHandler(_Handler):
    def get(self, sid: str) -> None:
        self.answer(200, {"artifacts": self.stub.artifacts})


class DraftHandler(_Handler):
    def get(self, sid: str) -> None:
        self.answer(200, self.stub.draft)


class PullRequestHandler(_Handler):
    def post(self, sid: str) -> None:
        self.answer(*self.stub.pr_answer)


def _unknown(sid: str) -> dict[str, str]:
    return {"code": "unknown_session", "message": f"no session {sid}"}


@contextmanager
def serving_stub() -> Iterator[Stub]:
    """The stub on an ephemeral port for the block; ``stub.url`` is its base URL."""
    stub = Stub()
    sockets = bind_sockets(0, "127.0.0.1")
    stub.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/"
    ready, stop = threading.Event(), threading.Event()

    async def main() -> None:
        app = tornado.web.Application([
            (r"/cloudws/api/status", StatusHandler, {"stub": stub}),
            (r"/cloudws/api/sessions/([^/]+)", SessionHandler, {"stub": stub}),
            (r"/cloudws/api/sessions/([^/]+)/changes", ChangesHandler, {"stub": stub}),
            (r"/cloudws/api/sessions/([^/]+)/artifacts", ArtifactsHandler, {"stub": stub}),
            (r"/cloudws/api/sessions/([^/]+)/pull-request/draft", DraftHandler, {"stub": stub}),
            (r"/cloudws/api/sessions/([^/]+)/pull-request", PullRequestHandler, {"stub": stub}),
        ])  # fmt: skip
        server = HTTPServer(app)
        server.add_sockets(sockets)
        ready.set()
        # The loop serves until the test's block ends; the wait runs on an executor thread.
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        server.stop()
        await server.close_all_connections()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="review-stub", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield stub
    finally:
        stop.set()
        thread.join(10)
