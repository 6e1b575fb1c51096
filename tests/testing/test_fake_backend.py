"""The fake backend is a faithful stand-in: the same methods, with the same signatures, as the
real SandboxBackend interface and BridgeStream protocol it replaces in tests."""

from __future__ import annotations

import inspect

import pytest

from jupyter_cloudws.backends.base import BridgeStream, SandboxBackend
from jupyter_cloudws.testing.fake_backend import FakeBackend, FakeStream

# What the fake overrides; liveness() and snapshot() it inherits, so the real ones run.
BACKEND_METHODS = ["create", "is_alive", "connect", "exec", "terminate", "exit_reason"]


@pytest.mark.parametrize("name", BACKEND_METHODS)
def test_the_fake_backend_has_the_interface_s_signatures(name):
    assert name in vars(FakeBackend), f"the fake does not implement {name}"
    real = inspect.signature(getattr(SandboxBackend, name))
    fake = inspect.signature(getattr(FakeBackend, name))
    assert fake.parameters.keys() == real.parameters.keys(), name
    assert inspect.iscoroutinefunction(getattr(FakeBackend, name)), name


@pytest.mark.parametrize("name", ["readline", "write", "close"])
def test_the_fake_stream_is_a_bridge_stream(name):
    real = inspect.signature(getattr(BridgeStream, name))
    fake = inspect.signature(getattr(FakeStream, name))
    assert fake.parameters.keys() == real.parameters.keys()
    assert inspect.iscoroutinefunction(getattr(FakeStream, name))
