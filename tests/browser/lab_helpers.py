"""Driving JupyterLab in headless Chromium (Playwright's sync API) for the browser tests.

``LabPage`` wraps a Playwright ``Page`` on a JupyterLab ``ServerProcess`` (``app="jupyterlab"``)::

    path = write_notebook(lab.work_dir, "demo")          # demo.ipynb, one empty code cell
    nb = LabPage(page, lab).open(path)                    # loaded, kernel connected and idle
    cell = nb.run_cell("1+1")                             # typed into the active cell, Shift+Enter
    nb.wait_for_output(cell, text="2")

The server runs with ``LabApp.expose_app_in_browser`` (see ``ServerProcess``), so the helpers can
ask ``window.jupyterapp`` whether the kernel is idle and what a cell holds; everything a user
does (typing, running, clicking) goes through the keyboard and mouse.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat
from playwright.sync_api import Locator, Page, expect

from jupyter_cloudws.testing.server import ServerProcess

CHROMIUM = "/usr/bin/chromium"
# What works on these machines (and keeps Chromium off the closed network).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1400, "height": 900}

PYTHON3_KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

_KERNEL_STATE_JS = """() => {
    const app = window.jupyterapp;
    const widget = app && app.shell.currentWidget;
    const kernel = widget && widget.sessionContext && widget.sessionContext.session
        && widget.sessionContext.session.kernel;
    return kernel ? kernel.status + '/' + kernel.connectionStatus : 'no kernel';
}"""
_CURRENT_NOTEBOOK_JS = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    return widget && widget.hasClass('jp-NotebookPanel') && widget.isVisible ? widget.id : null;
}"""
_SOURCE_JS = """(index) => {
    const nb = window.jupyterapp.shell.currentWidget.content;
    return nb.widgets[index].model.sharedModel.getSource();
}"""
_EDITING_JS = """(index) => {
    const nb = window.jupyterapp.shell.currentWidget.content;
    const cell = nb.widgets[index];
    return nb.mode === 'edit' && nb.activeCellIndex === index && cell.editor.hasFocus();
}"""


def write_notebook(directory: Path, name: str, cells: Sequence[str] = ("",), **metadata: Any) -> str:
    """Write ``directory/name.ipynb`` (code cells with these sources, Python 3 kernelspec so JupyterLab
    starts the kernel without asking) and return its name, relative to ``directory``."""
    path = name if name.endswith(".ipynb") else f"{name}.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": PYTHON3_KERNELSPEC, **metadata})
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    (directory / path).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, directory / path)
    return path


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class LabPage:
    """One browser page on JupyterLab, with the notebook chores done the way a user does them.

    Each ``LabPage`` has a JupyterLab workspace of its own (``workspace``), so that tabs a test
    opened do not come back in the next test's page; a reload keeps it, as it keeps a user's.
    """

    def __init__(self, page: Page, lab: ServerProcess, workspace: str | None = None) -> None:
        self.page = page
        self.lab = lab
        self.workspace = workspace or f"test-{uuid.uuid4().hex[:8]}"
        self.path: str | None = None
        self._panel_id: str | None = None

    @property
    def notebook(self) -> Locator:
        """The panel (toolbar and cells) of the notebook opened last."""
        assert self._panel_id is not None, "no notebook open"
        return self.page.locator(f'[id="{self._panel_id}"]')

    # --- loading -------------------------------------------------------------------------------

    def open(self, path: str, timeout_s: float = 60) -> LabPage:
        """Open the notebook at ``path`` (relative to the server's root dir) and wait until it is ready."""
        self.path = path
        self.page.goto(self.lab.lab_url(path, self.workspace))
        return self.wait_ready(timeout_s)

    def open_launcher(self, timeout_s: float = 60) -> Locator:
        """Open JupyterLab on no document; returns the Launcher (shown when nothing else is open)."""
        self.path = None
        self.page.goto(self.lab.lab_url("", self.workspace))
        launcher = self.page.locator(".jp-Launcher")
        expect(launcher).to_be_visible(timeout=timeout_s * 1000)
        return launcher

    def wait_ready(self, timeout_s: float = 60) -> LabPage:
        """The notebook is the current tab, shown with its cells, and its kernel is connected and idle."""
        self._panel_id = wait_until(
            lambda: self.page.evaluate(_CURRENT_NOTEBOOK_JS), timeout_s, "a notebook in the current tab"
        )
        expect(self.notebook.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=timeout_s * 1000)
        return self.wait_kernel_idle(timeout_s)

    def reload(self, timeout_s: float = 60) -> LabPage:
        """Reload the page (a dirty notebook's "leave page?" prompt is accepted by the ``page`` fixture)
        and wait until the notebook is ready again."""
        self.page.reload()
        return self.wait_ready(timeout_s)

    def kernel_state(self) -> str:
        """``"<status>/<connectionStatus>"`` of the current notebook's kernel, e.g. ``"idle/connected"``."""
        return self.page.evaluate(_KERNEL_STATE_JS)

    def wait_kernel_idle(self, timeout_s: float = 60) -> LabPage:
        """Wait for the kernel to be connected and idle, and for the toolbar's indicator to say so."""
        wait_until(lambda: self.kernel_state() == "idle/connected", timeout_s, "an idle, connected kernel")
        indicator = self.notebook.locator(".jp-Notebook-ExecutionIndicator")
        expect(indicator).to_have_attribute("data-status", "idle", timeout=timeout_s * 1000)
        return self

    # --- cells ---------------------------------------------------------------------------------

    @property
    def cells(self) -> Locator:
        return self.notebook.locator(".jp-Notebook .jp-Cell")

    def cell(self, index: int) -> Locator:
        return self.cells.nth(index)

    def active_index(self) -> int:
        """The active cell's index (clicking anywhere in a cell, its outputs too, makes it active)."""
        return self.page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex")

    def source(self, index: int) -> str:
        """The text of cell ``index`` as the notebook model holds it."""
        return self.page.evaluate(_SOURCE_JS, index)

    def empty_last_cell(self) -> int:
        """The index of an empty cell at the end of the notebook, made as a user does (Esc, B) if the
        last cell holds something."""
        last = self.cells.count() - 1
        if self.source(last) == "":
            return last
        self.cell(last).locator(".cm-content").click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("b")
        wait_until(lambda: self.cells.count() == last + 2, 10, "a new cell below the last")
        return last + 1

    def type_into_cell(self, index: int, code: str) -> Locator:
        """Replace the text of cell ``index`` with ``code``, typed into its CodeMirror editor."""
        cell = self.cell(index)
        cell.locator(".cm-content").click()
        wait_until(lambda: self.page.evaluate(_EDITING_JS, index), 10, f"cell {index}'s editor to have the focus")
        self.page.keyboard.press("Control+A")  # in the editor: all of its text
        self.page.keyboard.insert_text(code)
        wait_until(lambda: self.source(index) == code, 10, f"cell {index} to hold {code!r}")
        return cell

    def run_cell(self, code: str | None = None, index: int | None = None, timeout_s: float = 60) -> Locator:
        """Type ``code`` into cell ``index`` (default: the empty cell at the end, made if needed),
        run it with Shift+Enter and wait until it has run and the kernel is idle. Returns the cell.
        ``code=None`` runs the cell as it is. JupyterLab then selects the next cell, adding an
        empty one after the last, so consecutive ``run_cell(code)`` calls fill the notebook in order."""
        if index is None:
            index = self.empty_last_cell()
        cell = self.cell(index)
        prompt = cell.locator(".jp-InputArea-prompt")
        before = prompt.inner_text()
        if code is not None:
            self.type_into_cell(index, code)
        else:
            cell.locator(".cm-content").click()
        self.page.keyboard.press("Shift+Enter")
        wait_until(
            lambda: re.fullmatch(r"\[\d+\]:", text := prompt.inner_text().strip()) and text != before.strip(),
            timeout_s, f"cell {index} to finish running",
        )  # fmt: skip
        self.wait_kernel_idle(timeout_s)
        return cell

    def outputs(self, cell: Locator) -> Locator:
        return cell.locator(".jp-OutputArea-output")

    def wait_for_output(
        self, cell: Locator, text: str | re.Pattern[str] | None = None, selector: str | None = None,
        timeout_s: float = 30,
    ) -> Locator:  # fmt: skip
        """Wait for an output of ``cell`` that matches ``selector`` (inside the output) and/or has
        ``text`` (substring, or a regex); returns it. Neither: the first output."""
        found = self.outputs(cell)
        if selector is not None:
            found = found.locator(selector)
        if text is not None:
            found = found.filter(has_text=text)
        found = found.first
        expect(found).to_be_visible(timeout=timeout_s * 1000)
        return found

    # --- documents -----------------------------------------------------------------------------

    def save(self, timeout_s: float = 30) -> LabPage:
        """Save the notebook with Ctrl+S and wait until it is on disk (the tab's dirty mark gone)."""
        self.page.keyboard.press("Control+s")
        wait_until(
            lambda: not self.page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty"),
            timeout_s, "the notebook to be saved",
        )  # fmt: skip
        return self

    def saved_notebook(self) -> nbformat.NotebookNode:
        """The notebook as it is on disk now."""
        assert self.path is not None, "no notebook open"
        return nbformat.read(self.lab.work_dir / self.path, as_version=4)
