"""Every setting a user can make is documented twice: help text for `--help-all`, and a row in
the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jupyter_cloudws.app import CloudWorkspaces
from jupyter_cloudws.backends.local import LocalBackend
from jupyter_cloudws.backends.modal import ModalBackend
from jupyter_cloudws.github import GitHub

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
# Set by the extension, not by users.
INTERNAL = {("LocalBackend", "root_dir"), ("ModalBackend", "hub_instance"), ("ModalBackend", "modal_module")}


def settings(cls: type) -> list[tuple[str, str]]:
    own = cls.class_own_traits(config=True) if cls is not CloudWorkspaces else {}
    if cls is CloudWorkspaces:
        base = set(CloudWorkspaces.__mro__[1].class_traits(config=True))
        own = {k: v for k, v in cls.class_traits(config=True).items() if k not in base}
    return [(cls.__name__, name) for name in sorted(own)]


ALL = [s for cls in (CloudWorkspaces, LocalBackend, ModalBackend, GitHub) for s in settings(cls) if s not in INTERNAL]


@pytest.mark.parametrize(("cls", "name"), ALL, ids=[f"{c}.{n}" for c, n in ALL])
def test_the_setting_has_help_and_a_readme_row(cls: str, name: str) -> None:
    klass = {"CloudWorkspaces": CloudWorkspaces, "LocalBackend": LocalBackend, "ModalBackend": ModalBackend,
             "GitHub": GitHub}[cls]
    assert klass.class_traits()[name].help.strip(), f"{cls}.{name} has no help text"
    label = name if cls == "CloudWorkspaces" else f"{cls}.{name}"
    # The first cell names the setting; one row may name several of a class ("`A.x` / `y`").
    cells = [line.split("|")[1] for line in README.splitlines() if line.startswith("| `")]
    prefix = "" if cls == "CloudWorkspaces" else f"`{cls}."
    names = re.compile(r"`(?:\w+\.)?(\w+)`")
    assert any(cell.strip().startswith(prefix or "`") and (cls == "CloudWorkspaces") == ("Backend." not in cell and "GitHub." not in cell)
               and name in names.findall(cell) for cell in cells), f"no README row for {label}"
