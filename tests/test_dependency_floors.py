"""The lower bounds in pyproject.toml are no lower than the releases that brought the APIs we use.

A floor set too low installs fine and then fails at import or at first use. Each entry names the
API and the first release that has it (read from the projects' own tags), and the installed
version must have it too, so the record is checked against the real package.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Callable

import pytest
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the floors do not depend on the Python

ROOT = Path(__file__).resolve().parent.parent


def _has_ws_authenticated() -> bool:
    from jupyter_server.auth import decorator

    return hasattr(decorator, "ws_authenticated")


def _cleaner_takes_url_relative() -> bool:
    import nh3

    return "url_relative" in inspect.signature(nh3.Cleaner).parameters


def _has_asyncio_client() -> bool:
    from websockets.asyncio import client

    return "additional_headers" in inspect.signature(client.connect).parameters


def _has_lifecycle_esm() -> bool:
    import anywidget

    return hasattr(anywidget, "AnyWidget")


def _matches_cells_by_id() -> bool:
    from nbdime.diffing import notebooks

    return hasattr(notebooks, "compare_cell_by_ids")


# distribution -> (first release with what we use, what that is, a check on the installed package)
NEEDED: dict[str, tuple[str, str, Callable[[], Any]]] = {
    "jupyter_server": ("2.13", "jupyter_server.auth.decorator.ws_authenticated (handlers.py)", _has_ws_authenticated),
    "nh3": ("0.3.6", "nh3.Cleaner(url_relative=...) (widget/markdown.py)", _cleaner_takes_url_relative),
    "websockets": ("13", "websockets.asyncio.client.connect(additional_headers=) (client/stream.py)",
                   _has_asyncio_client),
    # ``export default { initialize, render }`` in chat.js
    "anywidget": ("0.9", "the initialize/render front-end lifecycle (widget/chat.js)", _has_lifecycle_esm),
    # nbdime 4.0.0 (jupyter/nbdime#639) matches cells by their nbformat 4.5 ids before their content.
    "nbdime": ("4", "cells matched by id in nbdime.diff_notebooks (review/notebook_diff.py)", _matches_cells_by_id),
}


def declared_floors() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for requirement in project["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)", requirement)
        if match:
            floors[match.group(1).replace("-", "_").lower()] = Version(match.group(2))
    return floors


@pytest.mark.parametrize("name", sorted(NEEDED))
def test_the_declared_floor_has_the_api_we_use(name: str) -> None:
    first, what, installed_has_it = NEEDED[name]
    floor = declared_floors().get(name)
    assert floor is not None, f"pyproject.toml declares no lower bound for {name}"
    assert floor >= Version(first), f"{name}>={floor} is too low: {what} needs {first}"
    assert installed_has_it(), f"the installed {name} lacks {what}"
