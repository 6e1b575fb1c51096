"""Test servers on the modal backend run under ``strict_modal``: a blocking Modal call made inside
the event loop (modal warns ``AsyncUsageWarning``) is an error there, not a line in a log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_an_async_usage_warning_in_the_launched_module_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "blocking_call.py").write_text(
        "import asyncio, warnings\n"
        "from modal.exception import AsyncUsageWarning\n"
        "async def main():\n"
        "    warnings.warn('a blocking call in the loop', AsyncUsageWarning)\n"
        "asyncio.run(main())\n"
        "print('carried on')\n"
    )
    run = [sys.executable, "-m", "jupyter_cloudws.testing.strict_modal", "blocking_call"]
    done = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[2]}", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode != 0
    assert "AsyncUsageWarning: a blocking call in the loop" in done.stderr
    assert "carried on" not in done.stdout


def test_the_launched_module_gets_its_own_arguments(tmp_path: Path) -> None:
    (tmp_path / "echo_args.py").write_text("import sys\nprint(sys.argv[1:])\n")
    run = [sys.executable, "-m", "jupyter_cloudws.testing.strict_modal", "echo_args", "--port=1", "x"]
    done = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[2]}", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.stdout.strip() == "['--port=1', 'x']"
