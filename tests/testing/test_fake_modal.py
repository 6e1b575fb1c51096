"""The fake modal module behaves as modal 1.6.4 does for what the Modal backend uses: calls bound
to the real signatures, the real exceptions, and sandboxes that are real processes on disk."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import modal
import pytest
from modal.exception import (
    AsyncUsageWarning,
    AuthError,
    ConflictError,
    DeprecationError,
    ImageBuildError,
    InvalidError,
    NotFoundError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)

from jupyter_cloudws.testing import fake_modal

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "fake-modal"
    root.mkdir()
    monkeypatch.setenv(fake_modal.ROOT_ENV, str(root))
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "no-such.toml"))
    monkeypatch.delenv("MODAL_PROFILE", raising=False)
    monkeypatch.delenv(fake_modal.UNREACHABLE_ENV, raising=False)
    yield root
    fake_modal.terminate_all(str(root))


async def make_app() -> fake_modal.App:
    return await fake_modal.App.lookup.aio("cloudws-test", create_if_missing=True)


async def run(sb: fake_modal.Sandbox, *argv: str) -> tuple[int, str]:
    p = await sb.exec.aio(*argv)
    out = await p.stdout.read.aio()
    return await p.wait.aio(), out


def running_ids(found: list[fake_modal.Sandbox]) -> set[str]:
    return {sb.object_id for sb in found}


# Held to the real API.


async def test_a_call_real_modal_refuses_raises_type_error(fake_root: Path):
    app = await make_app()
    with pytest.raises(TypeError, match="imagee"):
        await fake_modal.Sandbox.create.aio(app=app, imagee=fake_modal.Image.debian_slim())
    with pytest.raises(TypeError):
        await fake_modal.Sandbox.from_id.aio()
    with pytest.raises(TypeError, match="lines"):
        fake_modal.Image.debian_slim().pip_install("x", lines=True)
    with pytest.raises(TypeError):
        fake_modal.Secret.from_name("a", "b")  # environment_name is keyword-only in modal 1.6
    assert not (fake_root / "sandboxes").exists() or not list((fake_root / "sandboxes").iterdir())


REAL_CLASSES = {
    fake_modal.App: modal.App,
    fake_modal.Image: modal.Image,
    fake_modal.Secret: modal.Secret,
    fake_modal.Sandbox: modal.Sandbox,
    fake_modal.ContainerProcess: modal.container_process.ContainerProcess,
    fake_modal.StreamReader: modal.io_streams.StreamReader,
    fake_modal.StreamWriter: modal.io_streams.StreamWriter,
}


@pytest.mark.parametrize("fake_class", list(REAL_CLASSES), ids=lambda c: c.__name__)
def test_the_fake_offers_nothing_real_modal_lacks_and_aio_where_it_has_it(fake_class: type):
    real_class = REAL_CLASSES[fake_class]
    for name in (n for n in vars(fake_class) if not n.startswith("_")):
        assert hasattr(real_class, name), f"{fake_class.__name__}.{name} is not in modal 1.6"
        real, fake = getattr(real_class, name), getattr(fake_class, name)
        assert hasattr(real, "aio") == hasattr(fake, "aio"), f"{fake_class.__name__}.{name}.aio"


async def test_the_fake_has_the_real_signatures_and_exceptions():
    assert fake_modal.exception is modal.exception
    assert fake_modal.StreamType is modal.stream_type.StreamType
    # The Image builders and Secret constructors do no I/O in modal 1.6: no .aio there either.
    assert not hasattr(modal.Secret.from_dict, "aio") and not hasattr(fake_modal.Secret.from_dict, "aio")
    assert hasattr(modal.Sandbox.create, "aio") and hasattr(fake_modal.Sandbox.create, "aio")


async def test_deprecated_forms_warn_as_in_real_modal(fake_root: Path):
    app = await make_app()
    with pytest.warns(DeprecationError, match="environment_name"):
        sb = await fake_modal.Sandbox.create.aio(app=app, timeout=60, environment_name="main")
    snapshot = await sb.snapshot_filesystem.aio()
    with pytest.warns(DeprecationError, match="Image.from_id"):
        image = await fake_modal.Image.from_id.aio(snapshot.object_id)
    assert image.object_id == snapshot.object_id


async def test_a_blocking_call_inside_an_event_loop_fails_the_test(fake_root: Path, monkeypatch):
    # pyproject's filterwarnings makes AsyncUsageWarning an error, as for real modal. Modal (and
    # the fake) stay quiet inside an interactive IPython, which earlier tests of the suite start:
    # this is the server's case, where there is none.
    monkeypatch.setattr("modal._utils.async_utils.is_interactive_ipython", lambda: False)
    with pytest.raises(AsyncUsageWarning, match="blocking Modal interface"):
        fake_modal.App.lookup("cloudws-test", create_if_missing=True)
    assert not (fake_root / "apps.json").exists(), "the refused call must not have run"


def test_blocking_calls_work_outside_an_event_loop(fake_root: Path):
    app = fake_modal.App.lookup("cloudws-test", create_if_missing=True)
    sb = fake_modal.Sandbox.create(app=app, timeout=60)
    p = sb.exec("printf", "a\\nb\\n", bufsize=1)
    assert list(p.stdout) == ["a\n", "b\n"]
    assert p.wait() == 0
    assert [found.object_id for found in fake_modal.Sandbox.list(app_id=app.app_id)] == [sb.object_id]
    sb.terminate()


async def test_app_lookup_gives_a_stable_id_and_refuses_unknown_names(fake_root: Path):
    app = await make_app()
    assert app.app_id.startswith("ap-") and len(app.app_id) == 25
    assert (await make_app()).app_id == app.app_id
    with pytest.raises(NotFoundError):
        await fake_modal.App.lookup.aio("never-made")
    with pytest.raises(InvalidError):
        await fake_modal.App.lookup.aio("bad name!", create_if_missing=True)


# Exec'd processes.


async def test_exec_yields_lines_only_with_bufsize_1(fake_root: Path):
    sb = await fake_modal.Sandbox.create.aio(app=await make_app(), timeout=60)
    assert sb.object_id.startswith("sb-") and len(sb.object_id) == 25
    by_line = await sb.exec.aio("printf", "one\\ntwo\\nthree", bufsize=1)
    assert [line async for line in by_line.stdout] == ["one\n", "two\n", "three"]
    chunks = await sb.exec.aio("printf", "one\\ntwo\\nthree")
    assert [chunk async for chunk in chunks.stdout] == ["one\ntwo\nthree"]
    raw = await sb.exec.aio("printf", "x", text=False)
    assert await raw.stdout.read.aio() == b"x"
    with pytest.raises(ValueError, match="line-buffering"):
        await sb.exec.aio("true", text=False, bufsize=1)


async def test_exec_returncode_needs_wait_and_reports_exit_codes(fake_root: Path):
    sb = await fake_modal.Sandbox.create.aio(app=await make_app(), timeout=60)
    p = await sb.exec.aio("sh", "-c", "echo oops >&2; exit 3")
    with pytest.raises(InvalidError, match="wait"):
        p.returncode
    assert await p.stderr.read.aio() == "oops\n"
    assert await p.wait.aio() == 3
    assert p.returncode == 3 and await p.poll.aio() == 3


# The stdin test syncs through a FIFO: the process checks its stdin only once a second exec has
# written the FIFO, which happens after the undrained write returned.
STDIN_PROBE = (
    "import select, sys; open('/cloudws/go').read(); "
    "print('ready' if select.select([0], [], [], 0)[0] else 'empty', flush=True); "
    "print(sys.stdin.readline().strip(), flush=True)"
)


@pytest.mark.parametrize("drain_first", [False, True])
async def test_stdin_reaches_the_process_only_when_drained(fake_root: Path, drain_first: bool):
    sb = await fake_modal.Sandbox.create.aio(app=await make_app(), timeout=60)
    assert (await run(sb, "mkfifo", "/cloudws/go"))[0] == 0
    p = await sb.exec.aio("python", "-c", STDIN_PROBE, bufsize=1)
    p.stdin.write("data\n")
    if drain_first:
        await p.stdin.drain.aio()
    assert (await run(sb, "sh", "-c", "echo go > /cloudws/go"))[0] == 0
    lines = aiter(p.stdout)
    assert await anext(lines) == ("ready\n" if drain_first else "empty\n")
    if not drain_first:
        await p.stdin.drain.aio()
    assert await anext(lines) == "data\n"
    assert await p.wait.aio() == 0


async def test_execs_share_the_sandbox_s_files_tmp_processes_and_sockets(fake_root: Path):
    sb = await fake_modal.Sandbox.create.aio("sleep", "1234567", app=await make_app(), timeout=60)
    assert (await run(sb, "sh", "-c", "echo a > /cloudws/a; echo t > /tmp/t"))[0] == 0
    assert await run(sb, "cat", "/cloudws/a", "/tmp/t") == (0, "a\nt\n")
    assert "sleep 1234567" in (await run(sb, "ps", "-eo", "args"))[1]
    server = await sb.exec.aio(
        "python", "-c",
        "import socket; s = socket.socket(socket.AF_UNIX); s.bind('/cloudws/s.sock'); s.listen(); "
        "print('listening', flush=True); c, _ = s.accept(); c.sendall(b'hello from the server')",
        bufsize=1,
    )  # fmt: skip
    assert await anext(aiter(server.stdout)) == "listening\n"
    client = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/cloudws/s.sock'); print(s.recv(99).decode())"
    )
    assert await run(sb, "python", "-c", client) == (0, "hello from the server\n")
    assert (await run(sb, "touch", "/usr/not-writable"))[0] != 0


async def test_secrets_and_env_reach_the_process_and_secret_values_are_never_recorded(fake_root: Path):
    (fake_root / "secrets.json").write_text(json.dumps({"named": {"NAMED_VAR": "named-value"}}))
    sb = await fake_modal.Sandbox.create.aio(
        app=await make_app(), timeout=60, env={"PLAIN": "plain-value"},
        secrets=[fake_modal.Secret.from_dict({"API_KEY": "sk-very-secret"}), fake_modal.Secret.from_name("named")],
        image=fake_modal.Image.debian_slim().env({"FROM_IMAGE": "image-value"}),
    )  # fmt: skip
    out = (await run(sb, "sh", "-c", "echo $API_KEY $NAMED_VAR $PLAIN $FROM_IMAGE; which python"))[1]
    assert out == f"sk-very-secret named-value plain-value image-value\n{Path(sys.executable).parent}/python\n"
    calls = fake_modal.read_calls(fake_root)
    create = next(c for c in calls if c["call"] == "Sandbox.create")
    assert {"secret": "from_dict", "keys": ["API_KEY"]} in create["args"]["secrets"]
    assert "sk-very-secret" not in (fake_root / "calls.jsonl").read_text()
    with pytest.raises(NotFoundError, match="missing"):
        await fake_modal.Sandbox.create.aio(app=await make_app(), secrets=[fake_modal.Secret.from_name("missing")])


# Lifecycle.


async def test_terminate_ends_the_sandbox_and_its_execs_and_list_forgets_it(fake_root: Path):
    app = await make_app()
    sb = await fake_modal.Sandbox.create.aio(app=app, timeout=60)
    other = await fake_modal.Sandbox.create.aio(app=app, timeout=60)
    child = await sb.exec.aio("sleep", "infinity")
    assert await sb.poll.aio() is None and sb.returncode is None
    assert running_ids([s async for s in fake_modal.Sandbox.list.aio(app_id=app.app_id)]) == {
        sb.object_id, other.object_id}  # fmt: skip
    assert await sb.terminate.aio() is None
    assert await sb.poll.aio() == 137
    assert await child.wait.aio() == 137, "an exec'd process dies with its sandbox"
    with pytest.raises(SandboxTerminatedError):
        await sb.wait.aio()
    await sb.wait.aio(raise_on_termination=False)
    assert running_ids([s async for s in fake_modal.Sandbox.list.aio(app_id=app.app_id)]) == {other.object_id}
    with pytest.raises(ConflictError):
        await sb.exec.aio("true")
    assert await other.terminate.aio(wait=True) == 137


async def test_a_sandbox_outlives_its_creator_and_is_found_by_id_from_another_process(fake_root: Path):
    script = (
        "import asyncio\n"
        "from jupyter_cloudws.testing import fake_modal\n"
        "async def main():\n"
        "    app = await fake_modal.App.lookup.aio('cloudws-test', create_if_missing=True)\n"
        "    sb = await fake_modal.Sandbox.create.aio(app=app, timeout=60, tags={'owner': 'alice'})\n"
        "    p = await sb.exec.aio('sh', '-c', 'echo made-by-creator > /cloudws/mark')\n"
        "    await p.wait.aio()\n"
        "    print(sb.object_id)\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    made = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    sandbox_id = made.stdout.strip()
    sb = await fake_modal.Sandbox.from_id.aio(sandbox_id)
    assert await sb.poll.aio() is None
    assert await run(sb, "cat", "/cloudws/mark") == (0, "made-by-creator\n")
    assert await sb.get_tags.aio() == {"owner": "alice"}
    with pytest.raises(NotFoundError):
        await fake_modal.Sandbox.from_id.aio("sb-" + "x" * 22)


async def test_list_filters_by_all_given_tags_and_set_tags_replaces_them(fake_root: Path):
    app = await make_app()
    a = await fake_modal.Sandbox.create.aio(app=app, timeout=60, tags={"owner": "alice", "hub": "h1"})
    b = await fake_modal.Sandbox.create.aio(app=app, timeout=60, tags={"owner": "bob", "hub": "h1"})

    async def listed(**tags: str) -> set[str]:
        return running_ids([s async for s in fake_modal.Sandbox.list.aio(app_id=app.app_id, tags=tags)])

    assert await listed(hub="h1") == {a.object_id, b.object_id}
    assert await listed(hub="h1", owner="alice") == {a.object_id}
    assert await listed(hub="h2") == set()
    await b.set_tags.aio({"owner": "alice"})
    assert await b.get_tags.aio() == {"owner": "alice"}
    assert await listed(hub="h1") == {a.object_id}
    other_app = await fake_modal.App.lookup.aio("other", create_if_missing=True)
    assert running_ids([s async for s in fake_modal.Sandbox.list.aio(app_id=other_app.app_id)]) == set()


async def test_the_lifetime_timeout_kills_the_sandbox(fake_root: Path):
    sb = await fake_modal.Sandbox.create.aio(app=await make_app(), timeout=1)
    child = await sb.exec.aio("sleep", "infinity")
    with pytest.raises(SandboxTimeoutError):
        await sb.wait.aio()
    assert sb.returncode == 124
    assert await child.wait.aio() == 137


async def test_the_idle_timeout_counts_a_running_exec_as_activity(fake_root: Path):
    sb = await fake_modal.Sandbox.create.aio(app=await make_app(), timeout=60, idle_timeout=1)
    busy = await sb.exec.aio("sleep", "2")
    assert await busy.wait.aio() == 0, "a running exec keeps the sandbox from going idle"
    assert await sb.poll.aio() is None
    with pytest.raises(SandboxTimeoutError):
        await sb.wait.aio()


async def test_a_command_s_exit_code_ends_the_sandbox(fake_root: Path):
    sb = await fake_modal.Sandbox.create.aio("sh", "-c", "echo out; exit 7", app=await make_app(), timeout=60)
    await sb.wait.aio()
    assert sb.returncode == 7
    assert await sb.stdout.read.aio() == "out\n"
    assert (await fake_modal.Sandbox.from_id.aio(sb.object_id)).returncode == 7, "a new handle knows the end"


# Snapshots and images.


async def test_a_snapshot_restores_the_files_and_expires(fake_root: Path):
    app = await make_app()
    sb = await fake_modal.Sandbox.create.aio(app=app, timeout=60, workdir="/cloudws/work")
    setup = (
        "echo kept > file && ln -s file link && "
        "python -c \"import socket; socket.socket(socket.AF_UNIX).bind('/cloudws/work/sock')\""
    )
    assert (await run(sb, "sh", "-c", setup))[0] == 0
    image = await sb.snapshot_filesystem.aio()
    assert image.object_id.startswith("im-")
    restored = await fake_modal.Sandbox.create.aio(
        app=app, timeout=60, workdir="/cloudws/work", image=fake_modal.Image.from_id(image.object_id)
    )
    assert await run(restored, "sh", "-c", "cat file; readlink link; test -e sock || echo no-socket") == (
        0, "kept\nfile\nno-socket\n")  # fmt: skip
    fake_modal.expire_image(fake_root, image.object_id)
    gone = fake_modal.Image.from_id(image.object_id)  # no I/O, as in modal 1.6: fails when used
    with pytest.raises(NotFoundError):
        await fake_modal.Sandbox.create.aio(app=app, image=gone)
    with pytest.raises(NotFoundError):
        await gone.build.aio()


async def test_images_are_checked_against_the_host_that_stands_in_for_them(fake_root: Path, tmp_path: Path):
    pytest_version = pytest.__version__
    good = fake_modal.Image.debian_slim().apt_install("git").pip_install(f"pytest=={pytest_version}")
    built = await good.build.aio()
    assert built.object_id.startswith("im-")
    assert (await fake_modal.Image.debian_slim().apt_install("git").pip_install(f"pytest=={pytest_version}")
            .build.aio()).object_id == built.object_id  # fmt: skip
    with pytest.raises(ImageBuildError, match="pytest"):
        await fake_modal.Image.debian_slim().pip_install("pytest==0.0.1").build.aio()
    local = tmp_path / "runtime"
    local.mkdir()
    (local / "mod.py").write_text("X = 1\n")
    (local / "skip.pyc").write_text("")
    with pytest.raises(InvalidError, match="cannot mount"):
        fake_modal.Image.debian_slim().add_local_dir(local, "/usr/lib/runtime")
    image = fake_modal.Image.debian_slim().add_local_dir(local, "/cloudws_runtime", ignore=["*.pyc"])
    sb = await fake_modal.Sandbox.create.aio(app=await make_app(), image=image, timeout=60)
    assert await run(sb, "ls", "/cloudws_runtime") == (0, "mod.py\n")
    assert (await run(sb, "touch", "/cloudws_runtime/new"))[0] != 0, "mounts are read-only"


async def test_local_files_for_the_writable_tree_are_part_of_it_and_of_its_snapshots(fake_root: Path, tmp_path: Path):
    local = tmp_path / "runtime"
    local.mkdir()
    (local / "mod.py").write_text("VERSION = 1\n")
    image = fake_modal.Image.debian_slim().add_local_dir(local, "/cloudws/runtime", copy=True)
    app = await make_app()
    sb = await fake_modal.Sandbox.create.aio(app=app, image=image, timeout=60)
    assert (await run(sb, "sh", "-c", "echo local-edit >> /cloudws/runtime/mod.py"))[0] == 0
    snapshot = await sb.snapshot_filesystem.aio()
    (local / "mod.py").write_text("VERSION = 2\n")
    restored = await fake_modal.Sandbox.create.aio(app=app, image=fake_modal.Image.from_id(snapshot.object_id))
    assert await run(restored, "cat", "/cloudws/runtime/mod.py") == (0, "VERSION = 1\nlocal-edit\n")
    fresh = await fake_modal.Sandbox.create.aio(app=app, image=image, timeout=60)
    assert await run(fresh, "cat", "/cloudws/runtime/mod.py") == (0, "VERSION = 2\n")


# Failure modes of the real API.


async def test_without_credentials_the_first_call_raises_auth_error(fake_root: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    monkeypatch.delenv("MODAL_TOKEN_ID")
    monkeypatch.delenv("MODAL_TOKEN_SECRET")
    with pytest.raises(AuthError, match="Token missing"):
        await fake_modal.App.lookup.aio("cloudws-test", create_if_missing=True)
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-only-half")
    with pytest.raises(AuthError):
        await fake_modal.App.lookup.aio("cloudws-test", create_if_missing=True)
    monkeypatch.delenv("MODAL_TOKEN_ID")
    toml = tmp_path / "modal.toml"
    toml.write_text('[work]\ntoken_id = "ak-1"\ntoken_secret = "as-1"\nactive = true\n')
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(toml))
    assert (await make_app()).app_id.startswith("ap-")


async def test_an_unreachable_api_hangs_until_the_caller_gives_up(fake_root: Path, monkeypatch: pytest.MonkeyPatch):
    app = await make_app()
    sb = await fake_modal.Sandbox.create.aio(app=app, timeout=60)
    monkeypatch.setenv(fake_modal.UNREACHABLE_ENV, "1")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(fake_modal.Sandbox.create.aio(app=app), 0.2)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(sb.poll.aio(), 0.2)
    monkeypatch.delenv(fake_modal.UNREACHABLE_ENV)
    assert await sb.poll.aio() is None
    assert running_ids([s async for s in fake_modal.Sandbox.list.aio(app_id=app.app_id)]) == {sb.object_id}
