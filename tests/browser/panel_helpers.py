"""Driving the Claude Code side panel (the lab extension) in JupyterLab and Notebook 7.

``KernelApiLog(page)`` records what the page asks of the kernels and sessions APIs, so a test can
prove the panel starts no kernel. ``SidePanel(page)`` finds the panel and its parts.
"""

from __future__ import annotations

import re
from typing import Any

from lab_helpers import wait_until
from playwright.sync_api import Locator, Page, expect

PANEL_ID = "jupyter-cloudws-panel"
MIME_TYPE = "application/vnd.jupyter.cloudws.panel+json"


class KernelApiLog:
    """Every request of ``page`` to ``/api/kernels`` or ``/api/sessions`` ("METHOD path"), and the
    body of every answer to ``GET /api/kernels`` (read as it passes: a reload discards bodies)."""

    def __init__(self, page: Page) -> None:
        self.requests: list[str] = []
        self.kernel_lists: list[Any] = []
        page.on("request", self._on_request)
        page.route(re.compile(r"/api/kernels(\?|$)"), self._pass_kernel_list)

    @staticmethod
    def _path(url: str) -> str:
        return re.sub(r"^https?://[^/]+", "", url).split("?")[0]

    def _on_request(self, request: Any) -> None:
        path = self._path(request.url)
        if re.match(r"^/api/(kernels|sessions)(/|$)", path):
            self.requests.append(f"{request.method} {path}")

    def _pass_kernel_list(self, route: Any) -> None:
        response = route.fetch()
        if route.request.method == "GET" and response.ok:
            self.kernel_lists.append(response.json())
        route.fulfill(response=response)

    def writes(self) -> list[str]:
        """Requests that could start, change or stop a kernel or a session (anything but GET)."""
        return [r for r in self.requests if not r.startswith("GET ")]


class SidePanel:
    """The panel in ``page``: ``root`` (the Lumino widget), ``chat`` (chat.js's root) and friends."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.root = page.locator(f"#{PANEL_ID}")
        self.chat = self.root.locator(".cloudws-chat")
        self.prompt = self.chat.locator(".cw-input-text")
        self.composer = self.chat.locator(".cw-composer")
        self.insert_button = self.root.locator(".jp-cloudws-toolbar .jp-ToolbarButtonComponent", has_text="Insert in notebook")

    def tab(self) -> Locator:
        """The panel's tab in JupyterLab's right sidebar."""
        return self.page.locator(f'.jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="{PANEL_ID}"]')

    def run_command(self, label: str) -> None:
        """Run a command from the command palette (Ctrl+Shift+C), by its label, as a user does."""
        self.page.keyboard.press("Control+Shift+c")
        palette = self.page.locator(".lm-CommandPalette")
        expect(palette).to_be_visible()
        palette.locator("input").fill(label)
        palette.locator(".lm-CommandPalette-item", has_text=label).first.click()

    def open_session(self, title: str) -> SidePanel:
        """Pick the session titled ``title`` in the panel's session list."""
        self.chat.get_by_role("button", name="Sessions").click()
        row = self.chat.locator(".cw-session-row", has_text=title)
        expect(row).to_be_visible(timeout=30_000)
        row.click()
        expect(self.chat.locator(".cw-title")).to_have_text(title, timeout=30_000)
        return self

    def send(self, text: str) -> None:
        """Type ``text`` into the prompt box and send it with Ctrl+Enter."""
        self.prompt.fill(text)
        self.prompt.press("Control+Enter")
        expect(self.prompt).to_have_value("", timeout=30_000)


_RESTORED_JS = """() => {
    const app = window.jupyterapp;
    if (!app) { return false; }
    app.restored.then(() => { window.__cloudwsRestored = true; });
    return window.__cloudwsRestored === true;
}"""


def wait_restored(page: Page, timeout_s: float = 60) -> None:
    """Wait until the application restored its layout (polled: awaiting ``app.restored`` inside
    ``evaluate`` fails when the page is still settling after a load)."""
    wait_until(lambda: page.evaluate(_RESTORED_JS), timeout_s, "the application to restore its layout")


def set_right_sidebar_width(page: Page, width_px: int) -> None:
    """Drag the handle between JupyterLab's main area and its right sidebar until the sidebar's
    content is ``width_px`` wide."""
    stack = page.locator("#jp-right-stack")
    box = stack.bounding_box()
    assert box is not None, "the right sidebar is not open"
    handles = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle")
    boxes = [b for b in (h.bounding_box() for h in handles.all()) if b and b["width"] + b["height"] > 0]
    handle = min(boxes, key=lambda b: abs(b["x"] + b["width"] / 2 - box["x"]))
    y = handle["y"] + handle["height"] / 2
    start_x = handle["x"] + handle["width"] / 2
    page.mouse.move(start_x, y)
    page.mouse.down()
    page.mouse.move(start_x + (box["width"] - width_px), y, steps=5)
    page.mouse.up()
    wait_until(lambda: abs(stack.bounding_box()["width"] - width_px) <= 4, 10, f"a {width_px} px right sidebar")


def assert_inside(inner: Locator, outer: Locator, viewport: dict[str, int]) -> None:
    """``inner`` is wholly inside ``outer`` and inside the viewport: nothing of it cut off."""
    a, b = inner.bounding_box(), outer.bounding_box()
    assert a is not None and b is not None
    tolerance = 1
    assert a["x"] >= b["x"] - tolerance and a["x"] + a["width"] <= b["x"] + b["width"] + tolerance, (a, b)
    assert a["y"] >= b["y"] - tolerance and a["y"] + a["height"] <= b["y"] + b["height"] + tolerance, (a, b)
    assert a["x"] >= 0 and a["y"] >= 0, a
    assert a["x"] + a["width"] <= viewport["width"] and a["y"] + a["height"] <= viewport["height"], (a, viewport)
