"""A restarted server ends the sandboxes it started that no session claims, and only those."""

from __future__ import annotations

from jupyter_cloudws.store import SessionStore
from jupyter_cloudws.testing.fake_backend import FakeBackend

from hub_fakes import make_hub, new_session


class ListingBackend(FakeBackend):
    """A fake backend that lists the sandboxes it holds, as Modal's ``Sandbox.list`` does."""

    def __init__(self, listed: list[str], error: Exception | None = None) -> None:
        super().__init__()
        self.listed = listed
        self.error = error
        self.claimed_seen: set[str] | None = None

    async def orphans(self, claimed: set[str]) -> list[str]:
        self.claimed_seen = set(claimed)
        if self.error is not None:
            raise self.error
        return [sandbox_id for sandbox_id in self.listed if sandbox_id not in claimed]


async def test_sandboxes_no_session_claims_are_ended_and_claimed_ones_kept() -> None:
    store = SessionStore(":memory:")
    backend = ListingBackend(["sb-kept", "sb-orphan-1", "sb-orphan-2"])
    hub = make_hub(store, backend)
    sid = new_session(hub)
    store.update_session(sid, sandbox_id="sb-kept")
    ended = await hub.end_orphans()
    assert backend.claimed_seen == {"sb-kept"}
    assert ended == ["sb-orphan-1", "sb-orphan-2"]
    assert backend.terminated == ["sb-orphan-1", "sb-orphan-2"]
    await hub.close()
    store.close()


async def test_a_backend_that_cannot_list_ends_nothing_and_the_hub_goes_on() -> None:
    store = SessionStore(":memory:")
    backend = ListingBackend(["sb-1"], error=ConnectionError("Modal did not answer"))
    hub = make_hub(store, backend)
    assert await hub.end_orphans() == []
    assert backend.terminated == []
    await hub.close()
    store.close()


async def test_the_server_start_sweeps_orphans() -> None:
    store = SessionStore(":memory:")
    backend = ListingBackend(["sb-orphan"])
    hub = make_hub(store, backend)
    await hub.start()
    await hub._orphan_sweep
    assert backend.terminated == ["sb-orphan"]
    await hub.close()
    store.close()
