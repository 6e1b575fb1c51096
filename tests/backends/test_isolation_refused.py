"""Where bubblewrap cannot run, a local sandbox is refused with the reason, never started bare."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    return {**jp_server_config, "LocalBackend": {"bwrap_path": "/nonexistent/bwrap"}}


async def test_without_bubblewrap_the_prompt_fails_saying_why_and_how_to_opt_out(api, make_repo, cloudws_data_dir):
    code, status = await api.get("status")
    assert status["isolation"] == "bubblewrap"
    session = await api.new_session(make_repo())
    prompt = await api.prompt(session["id"], "hello")
    done = await api.wait_until_complete(session["id"], prompt["message_id"], timeout_s=30)
    assert done["success"] is False
    failed = [e for e in await api.events(session["id"]) if e["type"] == "sandbox_status" and e["status"] == "failed"]
    assert failed and "bubblewrap" in failed[-1]["detail"]
    assert "c.LocalBackend.isolation = 'none'" in failed[-1]["detail"]
    assert not list((cloudws_data_dir / "sandboxes").glob("*/daemon.pid")), "nothing was started"
