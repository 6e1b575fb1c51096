"""An agent turned hostile (a prompt injection, say) tries to read what is not its own: the Jupyter
server's runtime file with its token, the hub's database, another session's work tree, a file in
the user's home and in the server's root directory. Under bubblewrap none of it reaches an event;
without isolation all of it does, which shows the attack is real.

Everything lives under /var/tmp, not /tmp: the sandbox gets a fresh /tmp, which would hide files
there whatever else the isolation got wrong.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import kill_sandboxes, make_bare_repo

from jupyter_cloudws.testing.fake_anthropic import FakeAnthropic, text, tool_use
from jupyter_cloudws.testing.server import ServerProcess

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="cloudws-attack-", dir="/var/tmp"))
    monkeypatch.setenv("HOME", str(root / "home"))
    yield root
    kill_sandboxes(root / "server" / "data" / "cloudws")
    shutil.rmtree(root, ignore_errors=True)


def wait_for_completion(client: httpx.Client, sid: str, mid: str, timeout_s: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = client.get(f"/sessions/{sid}/events", params={"limit": 1000}).json()["events"]
        if any(e["type"] == "execution_complete" and e["message_id"] == mid for e in events):
            return events
        time.sleep(0.1)
    raise AssertionError(f"prompt {mid} did not complete; events: {events}")


def attack(world: Path, fake_anthropic: FakeAnthropic, sandbox_env: dict[str, str], isolation: str) -> dict[str, Any]:
    """Run the attack on a server with ``isolation``; what the attacker's events hold, and the secrets."""
    secrets = {name: f"{name}-{uuid.uuid4().hex}" for name in ("token", "home", "work", "other_session", "db")}
    home_file = world / "home" / ".ssh" / "id_ed25519"
    home_file.parent.mkdir(parents=True)
    home_file.write_text(secrets["home"])
    server = ServerProcess(world / "server", token=secrets["token"], cloudws_config={"sandbox_env": sandbox_env, "local_repo_roots": [str(world)]},
                           config={"LocalBackend": {"isolation": isolation}})  # fmt: skip
    (world / "server" / "work").mkdir(parents=True)
    (world / "server" / "work" / "notes.txt").write_text(secrets["work"])
    repo = make_bare_repo(world, "project")
    fake_anthropic.on("leave a note", tool_use("Bash", {"command": f"echo {secrets['other_session']} > note.txt"}),
                      text("Noted."))  # fmt: skip
    server.start()
    try:
        with server.client() as client:
            status = client.get("/status").json()
            victim = client.post("/sessions", json={"repo": str(repo), "title": secrets["db"]}).json()
            mid = client.post(f"/sessions/{victim['id']}/prompts", json={"text": "leave a note"}).json()["message_id"]
            wait_for_completion(client, victim["id"], mid)
            data_dir = world / "server" / "data" / "cloudws"
            (victim_note,) = data_dir.glob("sandboxes/*/box/repo/note.txt")
            (runtime_file,) = (world / "server" / "runtime").glob("jpserver-*.json")
            targets = [runtime_file, victim_note, home_file, world / "server" / "work" / "notes.txt"]
            # The database is binary and big: pick the transcripts' text out of it (and its WAL).
            command = "; ".join(f"cat {t}" for t in targets) + f"; grep -a -o -h 'db-[0-9a-f]*' {data_dir}/cloudws.sqlite*"
            # A hook in the origin repository would run on the host at the next push.
            command += f"; echo 'touch {world}/pwned' > {repo}/hooks/post-update; chmod +x {repo}/hooks/post-update"
            # Pushing its own branch is allowed; moving the user's main is not.
            command += f"; echo 0000000000000000000000000000000000000000 > {repo}/refs/heads/main"
            main_before = (repo / "refs" / "heads" / "main").read_text()
            fake_anthropic.on("read everything", tool_use("Bash", {"command": command}), text("Read."))
            attacker = client.post("/sessions", json={"repo": str(repo)}).json()
            mid = client.post(f"/sessions/{attacker['id']}/prompts", json={"text": "read everything"}).json()["message_id"]
            events = wait_for_completion(client, attacker["id"], mid)
    finally:
        server.stop()
    outputs = [e["output"] for e in events if e["type"] == "tool_call" and e["status"] != "running"]
    hooked = (repo / "hooks" / "post-update").exists()
    moved = (repo / "refs" / "heads" / "main").read_text() != main_before
    return {"status": status, "secrets": secrets, "events": repr(events), "outputs": outputs, "hooked": hooked,
            "moved_main": moved}  # fmt: skip


def test_a_hostile_agent_under_bubblewrap_reads_nothing_outside_its_sandbox(world, fake_anthropic, sandbox_env):
    seen = attack(world, fake_anthropic, sandbox_env, "bubblewrap")
    assert seen["status"]["isolation"] == "bubblewrap"
    (output,) = seen["outputs"]
    assert "No such file or directory" in output, "the attacker's command ran and found nothing"
    leaked = [name for name, value in seen["secrets"].items() if value in seen["events"]]
    assert leaked == [], f"the sandbox read {leaked}"
    assert not seen["hooked"], "the sandbox could not plant a hook in the origin repository"
    assert not seen["moved_main"], "nor move the origin's other branches"
    assert "Read-only file system" in output


def test_without_isolation_the_same_attack_reads_everything(world, fake_anthropic, sandbox_env):
    seen = attack(world, fake_anthropic, sandbox_env, "none")
    assert seen["status"]["isolation"] == "none"
    leaked = {name for name, value in seen["secrets"].items() if value in seen["events"]}
    assert leaked == set(seen["secrets"]), "the attack is real: each secret is readable without isolation"
    assert seen["hooked"] and seen["moved_main"], "and a hook can be planted, and main moved"
