"""One server drives one data_dir: a second server on it refuses to load the extension, with a
message naming the first, instead of running the same queues and sandboxes twice."""

from __future__ import annotations

import httpx
import pytest
from support import kill_sandboxes

from jupyter_cloudws.app import DataDirInUse, lock_data_dir
from jupyter_cloudws.testing.server import ServerProcess


def test_the_data_dir_lock_is_held_once_and_names_its_holder(tmp_path):
    first = lock_data_dir(tmp_path)
    with pytest.raises(DataDirInUse, match=r"pid \d+"):
        lock_data_dir(tmp_path)
    first.close()  # the server stopped
    lock_data_dir(tmp_path).close()


def test_a_second_server_on_the_same_data_dir_refuses_with_the_first_ones_pid(tmp_path, sandbox_env):
    data_dir = tmp_path / "shared-data"
    config = {"data_dir": str(data_dir), "sandbox_env": sandbox_env}
    first = ServerProcess(tmp_path / "first", cloudws_config=config).start()
    second = ServerProcess(tmp_path / "second", cloudws_config=config)
    try:
        second.start(ready_path="api/status")
        assert first.proc is not None
        assert httpx.get(second.api_url + "/status", headers=second.headers).status_code == 404
        assert f"in use by another Jupyter server (pid {first.proc.pid})" in second.log_tail(200)
        assert httpx.get(first.api_url + "/status", headers=first.headers).status_code == 200
    finally:
        second.stop()
        first.stop()
        kill_sandboxes(data_dir)
    assert second.proc is not None and second.proc.returncode == 0, "SIGTERM stopped it, it took no SIGKILL"
    # Once the first has stopped, the data_dir is free again.
    third = ServerProcess(tmp_path / "third", cloudws_config=config).start()
    third.stop()
