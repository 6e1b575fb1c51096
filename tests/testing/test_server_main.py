"""Test servers start quickly: under ``server_main``, without ``rfc3987_syntax`` (whose import is most
of a server's start) yet checking everything they checked with it; and a plain ``jupyter server``
without the front ends' server extensions."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import jupyter_events
import jupyter_server
import pytest
import yaml  # jupyter_events reads its schemas with it

from jupyter_cloudws.testing import server as server_module
from jupyter_cloudws.testing.server import FRONT_END_EXTENSIONS, ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
IRI_FORMATS = {"iri", "iri-reference"}


def launch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    run = [sys.executable, "-m", "jupyter_cloudws.testing.server_main", *args]
    return subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"})  # fmt: skip


def test_the_launched_server_module_never_imports_rfc3987_syntax(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(
        "import sys\n"
        "import jupyter_server.serverapp\n"  # what a server imports first: jupyter_events, jsonschema
        "from jsonschema import Draft7Validator\n"
        "formats = Draft7Validator.FORMAT_CHECKER.checkers\n"
        "print(sys.modules.get('rfc3987_syntax') is not None, 'iri' in formats, 'uri' in formats, sys.argv[1:])\n"
    )
    done = launch(tmp_path, "probe", "--port=1", "x")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False False True ['--port=1', 'x']"


def test_strict_modal_still_applies_under_it(tmp_path: Path) -> None:
    (tmp_path / "blocking_call.py").write_text(
        "import asyncio, warnings\n"
        "from modal.exception import AsyncUsageWarning\n"
        "async def main():\n"
        "    warnings.warn('a blocking call in the loop', AsyncUsageWarning)\n"
        "asyncio.run(main())\n"
        "print('carried on')\n"
    )
    done = launch(tmp_path, "jupyter_cloudws.testing.strict_modal", "blocking_call")
    assert done.returncode != 0 and "AsyncUsageWarning: a blocking call in the loop" in done.stderr
    assert "carried on" not in done.stdout


def formats_in(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["format"]} if isinstance(node.get("format"), str) else set()
        return found.union(*(formats_in(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(formats_in(value) for value in node))
    return set()


def test_no_schema_a_server_checks_formats_of_names_an_iri_format() -> None:
    # jupyter_events is what validates with a format checker: its metaschemas and the event schemas
    # jupyter_server registers. Should one ever use an IRI format, server_main would hide a check.
    roots = [Path(jupyter_events.__file__).parent / "schemas", Path(jupyter_server.__file__).parent / "event_schemas"]
    schemas = [path for root in roots for path in sorted(root.rglob("*.y*ml"))]
    assert len(schemas) >= 5, schemas
    used = set().union(*(formats_in(yaml.safe_load(path.read_text())) for path in schemas))
    assert "uri" in used and not used & IRI_FORMATS, used


def test_a_plain_test_server_loads_none_of_the_front_ends_extensions(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", cloudws_config={"data_dir": str(tmp_path / "data")}).start()
    try:
        assert httpx.get(server.url + "api/status", headers=server.headers).status_code == 200
        assert httpx.get(server.url + "lab", headers=server.headers).status_code == 404
    finally:
        server.stop()
    loaded = {line.split(" | ")[0].split("] ")[-1] for line in server.log_tail(200).splitlines()
              if "extension was successfully loaded" in line}  # fmt: skip
    assert "jupyter_cloudws" in loaded and not loaded & set(FRONT_END_EXTENSIONS), loaded


def test_a_server_whose_free_port_was_taken_meanwhile_starts_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        # The race, made certain: free_port() hands out a port that another process binds first.
        ports = iter([taken_port])
        monkeypatch.setattr(server_module, "free_port", lambda: next(ports, None) or free_port())
        server = ServerProcess(tmp_path / "server", cloudws_config={"data_dir": str(tmp_path / "data")}).start()
        try:
            assert server.port != taken_port
            assert httpx.get(server.api_url + "/status", headers=server.headers).status_code == 200
        finally:
            server.stop()
    assert f"port {taken_port} is not available" in server.log_tail(200), "the first try met the taken port"
