"""Contract, Modal only: when Modal cannot be used (no credentials, an API that does not answer),
a spawn fails soon with the reason, and the server answers everything else meanwhile."""

from __future__ import annotations

import time

from contract_helpers import API_TIMEOUT_S, UNREACHABLE_ENV, Case, Hub, status_is

from jupyter_cloudws.testing.fake_anthropic import text

NO_CREDENTIALS = {"MODAL_TOKEN_ID": None, "MODAL_TOKEN_SECRET": None}


def timed_list(hub: Hub) -> tuple[float, float]:
    """``GET /sessions``: how long it took, and when (wall clock, as event ``ts``) it was answered."""
    started = time.monotonic()
    response = hub.client.get("/sessions")
    assert response.status_code == 200, response.text
    return time.monotonic() - started, time.time()


def test_without_credentials_the_first_prompt_fails_at_once_naming_what_to_set(
    modal_case: Case, hub_of, tmp_path
) -> None:
    env = {**NO_CREDENTIALS, "MODAL_CONFIG_PATH": str(tmp_path / "no-such-modal.toml")}
    server = modal_case.server("no-credentials", env=env).start()
    hub = hub_of(server)
    ask = modal_case.phrase("hello without credentials")
    modal_case.fake.on(ask, text("Never sent."))
    sid = hub.new_session(modal_case.git.make_remote("no-credentials"))

    posted = time.monotonic()
    hub.prompt(sid, ask)
    latency_s, _ = timed_list(hub)
    events = hub.wait_for(sid, status_is("failed"), timeout_s=30)
    failed_after_s = time.monotonic() - posted

    failed = next(e for e in events if status_is("failed")(e))
    assert "MODAL_TOKEN_ID" in failed["detail"] and "MODAL_TOKEN_SECRET" in failed["detail"], failed
    assert "modal token new" in failed["detail"] or ".modal.toml" in failed["detail"], failed
    # "At once": no API round trip was tried and waited for (the API timeout is 30 s here).
    assert failed_after_s < 10, f"the spawn took {failed_after_s:.1f} s to fail"
    assert latency_s < 2, f"GET /sessions took {latency_s:.1f} s meanwhile"
    assert hub.session(sid)["sandbox_status"] == "failed"
    assert not [r for r in modal_case.fake.main_requests() if ask in repr(r["body"]["messages"])], "no agent ran"
    server.kill()


def test_an_unreachable_api_fails_the_spawn_within_the_api_timeout_and_the_server_stays_responsive(
    modal_case: Case, hub_of
) -> None:
    server = modal_case.server("unreachable", env={UNREACHABLE_ENV: "1"},
                               sections={"ModalBackend": {"api_timeout_s": API_TIMEOUT_S}})  # fmt: skip
    server.start()
    hub = hub_of(server)
    ask = modal_case.phrase("hello unreachable")
    sid = hub.new_session(modal_case.git.make_remote("unreachable"))

    posted = time.monotonic()
    hub.prompt(sid, ask)
    # The spawn is under way (and hangs on its first Modal call) once "spawning" is logged.
    hub.wait_for(sid, status_is("spawning"), timeout_s=10)
    latency_s, answered_at = timed_list(hub)
    events = hub.wait_for(sid, status_is("failed"), timeout_s=API_TIMEOUT_S + 30)
    failed_after_s = time.monotonic() - posted

    failed = next(e for e in events if status_is("failed")(e))
    assert answered_at < failed["ts"], "the server answered while the Modal call was still pending"
    assert latency_s < API_TIMEOUT_S, f"GET /sessions took {latency_s:.1f} s while a Modal call hung"
    assert "within" in failed["detail"] and f"{API_TIMEOUT_S:g} s" in failed["detail"], failed
    assert API_TIMEOUT_S <= failed_after_s < API_TIMEOUT_S + 8, f"the spawn failed after {failed_after_s:.1f} s"
    server.kill()
