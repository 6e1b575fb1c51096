"""Fixtures of the backend contract suite; what it is and how it shares servers: contract_helpers.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from contract_helpers import IDLE_TIMEOUT_S, Case, Hub, make_case

from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic
from jupyter_cloudws.testing.git_http import GitHttpServer
from jupyter_cloudws.testing.server import ServerProcess


@pytest.fixture(scope="session")
def contract_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="session")
def contract_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path_factory.mktemp("contract-git")) as server:
        yield server


@pytest.fixture(scope="session", params=["local", "modal"])
def case(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    contract_fake: FakeAnthropic, contract_git: GitHttpServer,
) -> Iterator[Case]:  # fmt: skip
    made = make_case(request.param, tmp_path_factory.mktemp(f"contract-{request.param}"), contract_fake, contract_git)
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def modal_case(case: Case) -> Case:
    """For cases only the Modal backend has (credentials, an API to reach)."""
    if case.name != "modal":
        pytest.skip("a Modal-only case: the local backend has no credentials or API to reach")
    return case


@pytest.fixture(scope="session")
def shared_server(case: Case) -> Iterator[ServerProcess]:
    """One server per backend for the cases that neither restart it nor need special settings."""
    server = case.server("shared").start()
    yield server
    server.kill()  # its sandboxes go with the case's cleanup; a graceful stop only costs time


@pytest.fixture(scope="session")
def idle_server(case: Case) -> Iterator[ServerProcess]:
    """A server that stops sandboxes after ``IDLE_TIMEOUT_S`` without a prompt."""
    server = case.server("idle", sandbox_idle_timeout_s=IDLE_TIMEOUT_S).start()
    yield server
    server.kill()  # its sandboxes go with the case's cleanup; a graceful stop only costs time


@pytest.fixture(scope="session")
def _restartable(case: Case) -> Iterator[ServerProcess]:
    server = case.server("restartable")
    yield server
    server.kill()


@pytest.fixture
def restartable_server(_restartable: ServerProcess) -> ServerProcess:
    """A server per backend for the cases that kill and restart it (on the same port), running
    when the case begins: one start less per case than a server of its own."""
    if _restartable.proc is None or _restartable.proc.poll() is not None:
        _restartable.start(port=_restartable.port or None)
    return _restartable


@pytest.fixture
def hub_of() -> Iterator[Callable[[ServerProcess], Hub]]:
    hubs: list[Hub] = []

    def make(server: ServerProcess) -> Hub:
        hubs.append(Hub(server))
        return hubs[-1]

    yield make
    for hub in hubs:
        hub.close()
