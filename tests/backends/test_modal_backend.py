"""The Modal backend's own rules, without Modal: credentials, what it refuses, the conversation
it copies out of a sandbox (untrusted bytes)."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import pytest

from jupyter_cloudws.backends.base import SandboxGone, SandboxSpec, SnapshotGone
from jupyter_cloudws.backends.modal import (
    ExecStream,
    ModalBackend,
    _pack_conversation,
    _unpack_conversation,
    cli_requirement,
    credentials_problem,
    hub_instance_id,
)


class TestCredentials:
    def test_tokens_in_the_environment_are_enough(self, tmp_path: Path) -> None:
        assert credentials_problem({"MODAL_TOKEN_ID": "ak-1", "MODAL_TOKEN_SECRET": "as-1"}, str(tmp_path)) is None

    def test_a_config_file_is_enough(self, tmp_path: Path) -> None:
        (tmp_path / ".modal.toml").write_text("[default]\ntoken_id = 'ak-1'\n")
        assert credentials_problem({}, str(tmp_path)) is None

    def test_with_neither_the_message_names_what_to_set(self, tmp_path: Path) -> None:
        problem = credentials_problem({"MODAL_TOKEN_ID": "ak-1"}, str(tmp_path))
        assert problem is not None
        assert "MODAL_TOKEN_ID" in problem and "MODAL_TOKEN_SECRET" in problem
        assert str(tmp_path / ".modal.toml") in problem and "modal token new" in problem

    def test_modal_config_path_is_the_file_looked_for(self, tmp_path: Path) -> None:
        config = tmp_path / "elsewhere.toml"
        assert str(config) in credentials_problem({"MODAL_CONFIG_PATH": str(config)}, str(tmp_path))
        config.write_text("")
        assert credentials_problem({"MODAL_CONFIG_PATH": str(config)}, str(tmp_path)) is None


def spec(repo: str) -> SandboxSpec:
    return SandboxSpec(session_id="s1", repo=repo, base_branch="main", branch="cloudws/s1")


@pytest.mark.parametrize("repo", ["/home/ada/project", "file:///home/ada/project", "~/project", "project"])
async def test_a_path_on_this_machine_is_refused_with_the_reason(repo: str, monkeypatch) -> None:
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-1")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-1")
    with pytest.raises(SandboxGone, match="cannot reach .* on this machine"):
        # A module that cannot load: were the refusal missing, no call could reach the real Modal.
        await ModalBackend(modal_module="jupyter_cloudws.testing.no_such_module").create(spec(repo))


async def test_without_credentials_create_fails_at_once_naming_them(monkeypatch, tmp_path: Path) -> None:
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_CONFIG_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SandboxGone, match="MODAL_TOKEN_ID"):
        await ModalBackend(modal_module="jupyter_cloudws.testing.no_such_module").create(spec("https://git.example/r.git"))


def test_the_image_pins_the_cli_the_local_backend_runs() -> None:
    from importlib.metadata import version

    assert cli_requirement() == f"claude-agent-sdk=={version('claude-agent-sdk')}"


def test_each_data_dir_gets_its_own_stable_hub_tag(tmp_path: Path) -> None:
    a, b = hub_instance_id(str(tmp_path / "a")), hub_instance_id(str(tmp_path / "b"))
    assert a != b and a == hub_instance_id(str(tmp_path / "a"))
    assert len(a) <= 63


def test_two_hubs_at_the_same_path_on_different_machines_get_different_tags(tmp_path: Path) -> None:
    """Users of one JupyterHub share a data_dir path (and maybe a Modal workspace): a tag derived
    from the path would let one user's orphan sweep end another's sandboxes."""
    import shutil

    first = hub_instance_id(str(tmp_path / "cloudws"))
    shutil.rmtree(tmp_path / "cloudws")  # the same path, another machine
    assert hub_instance_id(str(tmp_path / "cloudws")) != first


class TestConversationCopy:
    def test_a_conversation_goes_out_and_back_without_planted_settings(self, tmp_path: Path) -> None:
        src = tmp_path / "src"
        (src / "projects" / "-cloudws-repo").mkdir(parents=True)
        (src / "projects" / "-cloudws-repo" / "abc.jsonl").write_text('{"type":"user"}\n')
        (src / "settings.json").write_text('{"hooks": {}}')
        archive = _pack_conversation(str(src))
        assert archive is not None
        dest = tmp_path / "dest"
        _unpack_conversation(archive, str(dest))
        assert (dest / "projects" / "-cloudws-repo" / "abc.jsonl").read_text() == '{"type":"user"}\n'
        assert not (dest / "settings.json").exists()

    def test_an_empty_conversation_is_not_copied(self, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        assert _pack_conversation(str(tmp_path / "empty")) is None
        assert _pack_conversation(None) is None

    def test_a_hostile_archive_writes_nothing_outside_and_no_links(self, tmp_path: Path) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, data in (("../escaped.txt", b"x"), ("/tmp/abs.txt", b"y"), ("ok.txt", b"fine")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            link = tarfile.TarInfo("link")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
        dest = tmp_path / "conv"
        _unpack_conversation(buffer.getvalue(), str(dest))
        assert sorted(p.name for p in dest.iterdir()) == ["ok.txt"]
        assert not (tmp_path / "escaped.txt").exists()


class FakeStdin:
    """Modal's stdin writer as it behaves: one buffer, sent on drain, cleared only once sent."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.sent: list[bytes] = []
        self.eof = False

    def write(self, data: bytes) -> None:
        self.buffer.extend(data)

    def write_eof(self) -> None:
        self.eof = True

    class _Drain:
        def __init__(self, stdin: "FakeStdin") -> None:
            self.stdin = stdin

        async def aio(self) -> None:
            data = bytes(self.stdin.buffer)
            await asyncio.sleep(0)  # the RPC: another task runs meanwhile
            self.stdin.sent.append(data)
            del self.stdin.buffer[: len(data)]

    @property
    def drain(self) -> "FakeStdin._Drain":
        return FakeStdin._Drain(self)


class FakeStdout:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __aiter__(self):
        async def gen():
            for chunk in self.chunks:
                yield chunk

        return gen()


class FakeProc:
    def __init__(self, chunks: list[bytes] = ()) -> None:
        self.stdin = FakeStdin()
        self.stdout = FakeStdout(list(chunks))


def exec_stream(proc: FakeProc) -> "ExecStream":
    return ExecStream(proc, ModalBackend(modal_module="jupyter_cloudws.testing.fake_modal"))


async def test_overlapping_writes_reach_the_sandbox_once_each_in_order() -> None:
    proc = FakeProc()
    stream = exec_stream(proc)
    await asyncio.gather(stream.write(b'{"op":"prompt"}\n'), stream.write(b'{"op":"ping"}\n'))
    assert b"".join(proc.stdin.sent) == b'{"op":"prompt"}\n{"op":"ping"}\n'


async def test_lines_are_cut_from_chunks_and_an_overlong_one_is_skipped_whole() -> None:
    from cloudws_sandbox.protocol import BRIDGE_MAX_LINE_BYTES

    from jupyter_cloudws.backends.base import LineTooLong

    big = b"x" * (BRIDGE_MAX_LINE_BYTES + 10)
    proc = FakeProc([b'{"a":', b'1}\n{"b"', b":2}\n" + big[:1000], big[1000:], b"tail\n", b'{"c":3}\n', b"end"])
    stream = exec_stream(proc)
    assert await stream.readline() == b'{"a":1}\n'
    assert await stream.readline() == b'{"b":2}\n'
    with pytest.raises(LineTooLong):
        await stream.readline()
    assert await stream.readline() == b'{"c":3}\n'
    assert await stream.readline() == b"end"
    assert await stream.readline() == b""


def test_an_archive_with_too_many_members_is_refused_and_the_saved_one_kept(tmp_path: Path, monkeypatch) -> None:
    from jupyter_cloudws.backends import modal as modal_backend

    monkeypatch.setattr(modal_backend, "MAX_UNPACKED_MEMBERS", 3)
    dest = tmp_path / "conv"
    dest.mkdir()
    (dest / "kept.jsonl").write_text("saved\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i in range(5):
            info = tarfile.TarInfo(f"f{i}")
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(SandboxGone, match="too large"):
        _unpack_conversation(buffer.getvalue(), str(dest))
    assert sorted(p.name for p in dest.iterdir()) == ["kept.jsonl"]


async def test_a_missing_named_secret_is_named_and_never_taken_for_a_gone_snapshot(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CLOUDWS_FAKE_MODAL_ROOT", str(tmp_path / "fake"))
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-1")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-1")
    backend = ModalBackend(modal_module="jupyter_cloudws.testing.fake_modal", secrets=["github-tokn"])
    restoring = SandboxSpec(session_id="s1", repo="https://git.example/r.git", base_branch="main",
                            branch="cloudws/s1", restore_from="im-0123456789abcdef")  # fmt: skip
    with pytest.raises(SandboxGone, match="no secret 'github-tokn'") as caught:
        await backend.create(restoring)
    assert not isinstance(caught.value, SnapshotGone)
