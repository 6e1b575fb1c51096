"""Settings of the extension that refuse values which cannot work, saying why."""

from __future__ import annotations

import pytest
from traitlets import TraitError
from jupyter_cloudws.app import CloudWorkspaces

def test_a_heartbeat_timeout_within_one_ping_interval_is_refused_with_the_reason():
    app = CloudWorkspaces(bridge_heartbeat_s=5.0)
    with pytest.raises(TraitError, match="must be longer than bridge_heartbeat_s"):
        app.bridge_heartbeat_timeout_s = 5.0
    app.bridge_heartbeat_timeout_s = 12.0
    assert app.bridge_heartbeat_timeout_s == 12.0
