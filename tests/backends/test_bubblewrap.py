"""The mount plan of a local sandbox, and what happens where bubblewrap cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_cloudws.backends import bubblewrap
from jupyter_cloudws.backends.bubblewrap import MountPlan, bwrap_argv, probe


def mounts(argv: list[str]) -> list[tuple[str, str]]:
    """(option, path) for each mount, in order."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--tmpfs",):
            out.append((argv[i], argv[i + 1]))
            i += 2
        elif argv[i] in ("--bind", "--ro-bind") and argv[i + 1] != "/":
            out.append((argv[i], argv[i + 1]))
            i += 3
        else:
            i += 1
    return out


def test_what_is_bound_back_beneath_a_hidden_directory_is_mounted_after_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    python = home / ".pyenv" / "versions" / "3.11"
    sandbox = home / "data" / "sandboxes" / "local-1" / "box"
    config = python / "etc" / "jupyter"
    for path in (python, sandbox, config):
        path.mkdir(parents=True)
    plan = MountPlan(writable=[str(sandbox)], hidden=[str(home), str(config)], readable=[str(python)])
    order = mounts(bwrap_argv("bwrap", plan, ["true"], chdir="/", info_fd=None, drop_caps=False))
    assert order.index(("--tmpfs", str(home))) < order.index(("--ro-bind", str(python)))
    assert order.index(("--tmpfs", str(home))) < order.index(("--bind", str(sandbox)))
    # A config directory inside the Python that is bound back stays hidden: deeper mounts win.
    assert order.index(("--ro-bind", str(python))) < order.index(("--tmpfs", str(config)))


def test_missing_paths_are_skipped_and_symlinks_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    plan = MountPlan(writable=[str(tmp_path / "link")], hidden=[str(tmp_path / "missing"), "/"])
    order = mounts(bwrap_argv("bwrap", plan, ["true"], chdir="/", info_fd=None, drop_caps=False))
    assert ("--bind", str(real)) in order
    assert all(path != str(tmp_path / "missing") and path != "/" for _, path in order)


def test_as_root_capabilities_are_dropped_and_the_network_is_kept() -> None:
    argv = bwrap_argv("bwrap", MountPlan(writable=[], hidden=[]), ["true"], chdir="/", info_fd=None, drop_caps=True)
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--unshare-pid" in argv and "--unshare-net" not in argv and "--unshare-all" not in argv


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap runs on Linux only")
def test_bubblewrap_works_on_this_machine() -> None:
    assert probe("bwrap") is None


def test_a_missing_bwrap_is_named() -> None:
    reason = probe("/nonexistent/bwrap")
    assert reason is not None and "bubblewrap" in reason


def test_another_platform_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bubblewrap.sys, "platform", "darwin")
    reason = probe("bwrap")
    assert reason is not None and "Linux" in reason and "darwin" in reason


def test_refused_namespaces_are_named(tmp_path: Path) -> None:
    refusing = tmp_path / "bwrap"
    refusing.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    refusing.chmod(0o755)
    reason = probe(str(refusing))
    assert reason is not None and "No permissions to create new namespace" in reason and "namespaces" in reason


@pytest.mark.skipif(os.geteuid() != 0, reason="checks what root could do inside the sandbox")
def test_root_in_the_sandbox_cannot_unmount_what_hides_the_host(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "secret").write_text("s3cret")
    plan = MountPlan(writable=[], hidden=[str(hidden)], tmpfs=())
    script = f"umount {hidden}; cat {hidden}/secret"
    argv = bwrap_argv("bwrap", plan, ["sh", "-c", script], chdir="/", info_fd=None, drop_caps=True)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert "s3cret" not in done.stdout
    assert "must be superuser" in done.stderr or "Operation not permitted" in done.stderr


def test_masked_files_are_covered_by_dev_null_after_everything_else(tmp_path: Path) -> None:
    secret = tmp_path / "etc" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:$6$hash")
    plan = MountPlan(writable=[str(tmp_path)], hidden=[], masked_files=[str(secret)], tmpfs=())
    argv = bwrap_argv("bwrap", plan, ["cat", str(secret)], chdir="/", info_fd=None, drop_caps=os.geteuid() == 0)
    assert argv[argv.index(str(secret)) - 1] == "/dev/null"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    # bubblewrap mounts it nodev, so the device cannot even be opened: nothing is read.
    assert "root:" not in done.stdout + done.stderr and done.stdout == ""
