"""The getting-started notebook that the product command opens runs top to bottom."""

from __future__ import annotations

from pathlib import Path

import nbformat
from support import git, kill_sandboxes
from nbclient import NotebookClient

from jupyter_cloudws.testing.fake_anthropic import text, tool_use
from jupyter_cloudws.testing.server import ServerProcess

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "getting-started.ipynb"


def test_the_getting_started_notebook_runs_against_a_real_server(tmp_path, sandbox_env, fake_anthropic, monkeypatch):
    fake_anthropic.on(
        "Add a hello.py",
        tool_use("Write", {"file_path": "hello.py", "content": "print('Hello from Claude!')\n"}),
        tool_use("Bash", {"command": "python3 hello.py"}),
        text("I added **hello.py**; it prints a greeting."),
    )
    server = ServerProcess(tmp_path / "server", cloudws_config={"sandbox_env": sandbox_env}).start()
    work = tmp_path / "server" / "work"
    try:
        # The kernel finds its server the way it would in JupyterLab: through the runtime dir.
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "server" / "runtime"))
        nb = nbformat.read(NOTEBOOK, as_version=4)
        NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    finally:
        server.stop()
        kill_sandboxes(tmp_path / "server" / "data" / "cloudws")

    outputs = "\n".join(
        out.get("text", "") or str(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )  # fmt: skip
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert "is current" in outputs, "%cloudws new made the session current"
    assert "[completed] Write" in outputs and "[completed] Bash" in outputs
    assert "I added **hello.py**" in outputs and "\ndone\n" in outputs
    widgets = [o for c in nb.cells for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]  # fmt: skip
    assert widgets, "the prompt cell shows the live chat widget"
    branch = git("--git-dir", str(work / "demo-repo.git"), "branch", "--list", "cloudws/*").strip()
    files = git("--git-dir", str(work / "demo-repo.git"), "ls-tree", "--name-only", branch)
    assert "hello.py" in files.split()
