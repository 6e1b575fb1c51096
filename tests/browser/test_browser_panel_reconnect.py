"""The side panel outlives its server: when the Jupyter server dies and comes back on the same
port, the panel says it is disconnected, reconnects by itself and reopens its session with the
whole transcript. (A module of its own: it kills its ``lab``.)"""

from __future__ import annotations

import pytest
from lab_helpers import wait_until
from panel_helpers import SidePanel
from playwright.sync_api import expect
from support import make_bare_repo

from jupyter_cloudws.testing.fake_anthropic import text


@pytest.fixture(scope="module", autouse=True)
def script(lab_fake_anthropic):
    lab_fake_anthropic.on("say thanks", text("You're **welcome**."))


def test_the_panel_reconnects_to_a_restarted_server_and_reopens_its_session(lab, lab_page, page, page_errors, shot):
    repo = make_bare_repo(lab.root, "reconnect-app")
    with lab.client() as client:
        assert client.post("/sessions", json={"repo": str(repo), "title": "Survivor"}).status_code in (200, 201)
    lab_page.open_launcher()
    panel = SidePanel(page)
    panel.tab().click()
    panel.open_session("Survivor")
    panel.send("Please say thanks")
    expect(panel.chat.locator(".cw-result")).to_contain_text("Done", timeout=60_000)
    rows = panel.chat.locator(".cw-block").count()

    status = panel.root.locator(".jp-cloudws-status")
    lab.kill()
    expect(status).to_contain_text("Disconnected from the server", timeout=30_000)
    shot("disconnected")
    lab.start(timeout_s=60, port=lab.port)
    # Back by itself: the status line clears once the server said hello, and the session reopens.
    expect(status).to_have_text("", timeout=60_000)
    expect(panel.chat.locator(".cw-title")).to_have_text("Survivor", timeout=30_000)
    expect(panel.chat.locator(".cw-assistant strong")).to_have_text("welcome", timeout=30_000)
    wait_until(lambda: panel.chat.locator(".cw-block").count() == rows, 30, f"{rows} blocks after reconnecting")
    shot("reconnected")
    # The page saw failed requests while the server was down; nothing in the page itself broke.
    assert not [e for e in page_errors if e.startswith("pageerror")], page_errors
