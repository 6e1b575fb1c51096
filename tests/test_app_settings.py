"""Settings of the extension that refuse values which cannot work, saying why."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from jupyter_cloudws.app import check_heartbeat


def test_a_heartbeat_timeout_within_one_ping_interval_is_refused_with_the_reason():
    with pytest.raises(TraitError, match="must be longer than bridge_heartbeat_s"):
        check_heartbeat(5.0, 5.0)
    check_heartbeat(0.5, 2.0)  # either order of loading: only the final values count
    check_heartbeat(0.0, 0.1)  # no heartbeat: no timeout to check
