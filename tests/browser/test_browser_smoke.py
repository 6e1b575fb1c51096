"""JupyterLab with the extension, in headless Chromium: it loads, runs code, and shows anywidgets
that talk to the kernel, also after a reload of the page."""

from __future__ import annotations

import httpx
from lab_helpers import write_notebook
from playwright.sync_api import expect

# An anywidget whose button shows ``n`` and adds one to it on a click (browser -> kernel), and
# follows ``n`` when the kernel changes it (kernel -> browser).
COUNTER = '''import anywidget, traitlets

class W(anywidget.AnyWidget):
    _esm = """export default { render({ model, el }) {
        el.innerHTML = '<button id="b">' + model.get('n') + '</button>';
        el.querySelector('button').onclick = () => { model.set('n', model.get('n') + 1); model.save_changes(); };
        model.on('change:n', () => { el.querySelector('button').textContent = model.get('n'); });
    } }"""
    n = traitlets.Int(0).tag(sync=True)

w = W()
w'''


def test_lab_loads_with_the_extension(lab, lab_page, page_errors, shot):
    status = httpx.get(f"{lab.url}cloudws/api/status", headers=lab.headers, timeout=10)
    assert status.status_code == 200, status.text
    assert status.json()["backend"] == "local"

    launcher = lab_page.open_launcher()
    expect(launcher).to_contain_text("Notebook")
    assert lab_page.page.evaluate("() => window.jupyterapp.hasPlugin('@jupyter-widgets/jupyterlab-manager:plugin')")
    assert not page_errors, page_errors


def test_a_cell_runs_and_shows_its_result(lab, lab_page, page_errors):
    lab_page.open(write_notebook(lab.work_dir, "arithmetic"))
    cell = lab_page.run_cell("1+1")
    expect(lab_page.wait_for_output(cell)).to_have_text("2")
    # The kernel finds its server the way the notebook widgets do: through JUPYTER_RUNTIME_DIR.
    cell = lab_page.run_cell(
        "from jupyter_server.serverapp import list_running_servers\n[s['port'] for s in list_running_servers()]"
    )
    expect(lab_page.wait_for_output(cell)).to_have_text(f"[{lab.port}]")
    assert not page_errors, page_errors


def test_an_anywidget_renders_and_round_trips_a_click(lab, lab_page, page_errors, shot):
    lab_page.open(write_notebook(lab.work_dir, "counter"))
    widget_cell = lab_page.run_cell(COUNTER)
    button = lab_page.wait_for_output(widget_cell, selector="button#b")
    expect(button).to_have_text("0")
    shot("rendered")

    button.click()  # browser -> kernel
    expect(button).to_have_text("1")
    expect(lab_page.wait_for_output(lab_page.run_cell("w.n"))).to_have_text("1")

    lab_page.run_cell("w.n = 5")  # kernel -> browser
    expect(button).to_have_text("5")
    assert not page_errors, page_errors


def test_after_a_reload_a_widget_comes_back_from_the_kernel_if_its_output_was_saved(lab, lab_page, page_errors, shot):
    """A reload shows the notebook as it is on disk, on the same, still-running kernel; ipywidgets'
    manager then fetches every widget's state from that kernel. So a widget output that was saved
    comes back live with the kernel's state, while an unsaved one is gone with its cell (the model
    lives on in the kernel and shows again where it is displayed anew)."""
    lab_page.open(write_notebook(lab.work_dir, "reloaded"))
    lab_page.run_cell(COUNTER)
    lab_page.wait_for_output(lab_page.cell(0), selector="button#b").click()
    expect(lab_page.wait_for_output(lab_page.cell(0), selector="button#b")).to_have_text("1")

    lab_page.reload()  # unsaved: the file still has its one empty cell
    assert lab_page.cells.count() == 1 and lab_page.source(0) == ""
    expect(lab_page.notebook.locator("button#b")).to_have_count(0)
    button = lab_page.wait_for_output(lab_page.run_cell("w"), selector="button#b")
    expect(button).to_have_text("1")  # the same model, from the same kernel

    lab_page.save()
    assert "application/vnd.jupyter.widget-view+json" in lab_page.saved_notebook().cells[0].outputs[0]["data"]
    lab_page.reload()
    button = lab_page.wait_for_output(lab_page.cell(0), selector="button#b")
    expect(button).to_have_text("1")  # the kernel's state, not the initial 0
    shot("after-reload")
    button.click()  # still wired to the same model in the same kernel
    expect(button).to_have_text("2")
    expect(lab_page.wait_for_output(lab_page.run_cell("w.n"))).to_have_text("2")
    assert not page_errors, page_errors
