"""A push asked for by a pull request, staged with the fake backend: what the hub does while
the sandbox has it, and when the link to the sandbox is lost meanwhile."""

from __future__ import annotations

import asyncio

import pytest
from hub_fakes import WAIT_S, new_session, running_on, send, status

from jupyter_cloudws.pushing import PushRefused
from jupyter_cloudws.testing.fake_backend import until


async def test_a_push_whose_link_is_lost_ends_at_once_and_no_idle_stop_comes_while_it_runs(fake_hub, fake_backend):
    sid = new_session(fake_hub)
    first = send(fake_hub, sid, "one")
    sandbox = await running_on(fake_backend)
    sandbox.complete(first)
    await until(lambda: status(fake_hub, first) == "done", WAIT_S)
    runner = fake_hub.runner(sid)
    runner.pusher.timeout_s = 3600.0  # only the lost link can end this wait within the test's bound

    pushing = asyncio.ensure_future(runner.pusher.push({"username": "ada"}))
    await until(lambda: sandbox.stream.ops_named("push"), WAIT_S)  # the fake sandbox never answers it
    assert runner._idle_held(), "an idle stop would end the sandbox in the middle of the push"

    sandbox.hang_up()
    with pytest.raises(PushRefused) as refused:
        await asyncio.wait_for(pushing, WAIT_S)
    assert refused.value.code == "not_running" and "lost" in refused.value.message
    assert not runner._idle_held()
