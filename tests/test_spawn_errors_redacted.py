"""A sandbox that cannot be started or reached may quote its log, and a log may hold a secret:
what the hub stores and shows of such an error is redacted."""

from __future__ import annotations

import json

from hub_fakes import WAIT_S, completions, make_hub, new_session, send, status

from jupyter_cloudws.backends.base import SandboxGone
from jupyter_cloudws.store import SessionStore
from jupyter_cloudws.testing.fake_backend import FakeBackend, until

SECRET = "sk-ant-very-secret-0123456789"


def hub_with_secret(backend: FakeBackend):
    store = SessionStore(":memory:")
    hub = make_hub(store, backend, agent_env={"ANTHROPIC_API_KEY": SECRET}, secret_names=("ANTHROPIC_API_KEY",))
    return store, hub


async def test_a_spawn_error_quoting_a_secret_is_stored_redacted() -> None:
    backend = FakeBackend()
    backend.create_error = SandboxGone(f"the image build failed: ANTHROPIC_API_KEY={SECRET}")
    store, hub = hub_with_secret(backend)
    sid = new_session(hub)
    prompt = send(hub, sid, "go")
    await until(lambda: status(hub, prompt) == "failed", WAIT_S)
    stored = json.dumps(hub.store.events_after(sid, 0, 1000)[0])
    assert SECRET not in stored and "[redacted]" in stored
    await hub.close()
    store.close()


async def test_an_unreachable_sandbox_quoting_a_secret_fails_the_prompt_redacted() -> None:
    backend = FakeBackend()
    backend.connect_error = SandboxGone(f"the daemon exited: Traceback ... key {SECRET}")
    store, hub = hub_with_secret(backend)
    sid = new_session(hub)
    prompt = send(hub, sid, "go")
    await until(lambda: status(hub, prompt) == "failed", WAIT_S)
    (done,) = completions(hub, sid, prompt)
    assert SECRET not in done["error"] and "[redacted]" in done["error"]
    await hub.close()
    store.close()
