"""The sandbox runtime ships into a sandbox image alone: standard library only, no Jupyter."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import cloudws_sandbox

RUNTIME_ROOT = Path(cloudws_sandbox.__file__).parent.parent  # the folder holding the package


def _bare_python(*args: str) -> subprocess.CompletedProcess[str]:
    """Python with no site-packages and only the runtime on its path, as in a bare image."""
    env = {"PYTHONPATH": str(RUNTIME_ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-S", *args], env=env, capture_output=True, text=True, timeout=60)


def test_help_runs_with_only_the_runtime_on_the_path() -> None:
    done = _bare_python("-m", "cloudws_sandbox", "--help")
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout and "attach" in done.stdout


def test_every_runtime_module_imports_only_the_standard_library() -> None:
    modules = [f"cloudws_sandbox.{m.name}" for m in pkgutil.iter_modules(cloudws_sandbox.__path__)]
    assert "cloudws_sandbox.protocol" in modules and "cloudws_sandbox.daemon" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "foreign = sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)"
        " - {'cloudws_sandbox', '__main__'})\n"
        "print(','.join(foreign))\n"
    )
    done = _bare_python("-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"the runtime imported non-stdlib modules: {done.stdout.strip()}"


def test_hub_and_runtime_share_one_protocol_definition() -> None:
    from jupyter_cloudws import bridge, store

    assert store.validate_event_body is cloudws_sandbox.protocol.validate_event_body
    assert bridge.parse_bridge_reply is cloudws_sandbox.protocol.parse_bridge_reply
