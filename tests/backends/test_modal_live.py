"""One whole session on real Modal, with the real Anthropic API: run only where credentials exist.

Needs ``MODAL_TOKEN_ID`` and ``MODAL_TOKEN_SECRET`` (a Modal account; the sandbox and the image
build are billed to it), ``ANTHROPIC_API_KEY``, and ``CLOUDWS_LIVE_REPO``, the https URL of a
public repository to clone (nothing is pushed to it: the push of the session branch is expected
to be refused). Without them the test reports itself skipped and says which is missing; it
never passes without running. The first run builds the sandbox image on Modal, which can take
minutes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_cloudws.testing.server import ServerProcess

NEEDED = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "ANTHROPIC_API_KEY", "CLOUDWS_LIVE_REPO")
SESSION_TIMEOUT_S = 900.0  # an image build on first use, a sandbox start, one agent turn


@pytest.fixture
def live_env() -> dict[str, str]:
    if not os.environ.get("MODAL_TOKEN_ID"):
        pytest.skip("live Modal test: MODAL_TOKEN_ID is not set (no Modal credentials here)")
    missing = [name for name in NEEDED if not os.environ.get(name)]
    if missing:
        pytest.skip(f"live Modal test: {', '.join(missing)} not set")
    if not os.environ["CLOUDWS_LIVE_REPO"].startswith("https://"):
        pytest.fail("CLOUDWS_LIVE_REPO must be the https:// URL of a public repository")
    return {name: os.environ[name] for name in NEEDED}


@pytest.fixture
def live_server(tmp_path: Path, live_env: dict[str, str]) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path / "server",
        # ANTHROPIC_API_KEY reaches the sandbox from the server's environment (agent_env's
        # default), as a Modal secret: never through a config file.
        cloudws_config={"backend": "modal"},
        config={"ModalBackend": {"app_name": "jupyter-cloudws-live-test", "timeout_s": 1800}},
    ).start(timeout_s=60)
    try:
        yield server
    finally:
        server.stop()


def wait_for(client: httpx.Client, session_id: str, predicate: Any, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = client.get(f"/sessions/{session_id}/events", params={"limit": 1000}).json()["events"]
        if any(predicate(e) for e in events):
            return events
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s} s; events: {[(e['type'], e.get('status')) for e in events]}")


@pytest.mark.timeout(SESSION_TIMEOUT_S + 120)
def test_a_whole_session_runs_on_real_modal(live_server: ServerProcess, live_env: dict[str, str]) -> None:
    with live_server.client() as client:
        response = client.post("/sessions", json={"repo": live_env["CLOUDWS_LIVE_REPO"], "title": "live Modal test"})
        assert response.status_code == 201, response.text
        sid = response.json()["id"]
        try:
            prompt = ("Use the Bash tool to run `ls` in the repository, then create a file named "
                      "cloudws-live.txt holding the word pelican, and answer with one short sentence.")  # fmt: skip
            message_id = client.post(f"/sessions/{sid}/prompts", json={"text": prompt}).json()["message_id"]
            events = wait_for(client, sid, lambda e: e["type"] == "execution_complete" and e["message_id"] == message_id
                              or e["type"] == "sandbox_status" and e["status"] == "failed", SESSION_TIMEOUT_S)  # fmt: skip
            failed = [e for e in events if e["type"] == "sandbox_status" and e["status"] == "failed"]
            assert not failed, f"the sandbox failed: {failed[-1]['detail']}"
            done = events[-1] if events[-1]["type"] == "execution_complete" else next(
                e for e in events if e["type"] == "execution_complete")  # fmt: skip
            assert done["success"] is True, done
            starts = [e["state"] for e in events if e["type"] == "sandbox_progress" and e["step"] == "start"]
            assert starts[-1] == "done", starts
            assert any(e["type"] == "tool_call" and e["status"] == "completed" for e in events), "the agent used a tool"
            assert any(e["type"] == "assistant_text" and e["text"].strip() for e in events), "the agent answered"
        finally:
            # Archive: the hub terminates the sandbox, so nothing keeps running (and billing).
            client.patch(f"/sessions/{sid}", json={"archived": True})
            wait_for(client, sid, lambda e: e["type"] == "sandbox_status" and e["status"] in ("stopped", "failed"), 120)
