"""The wheel's layout: every package folder of the checkout installs under quarry_al, nothing at the top level."""
from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_in_the_wheel():
    setuptools = PYPROJECT["tool"]["setuptools"]
    roots = setuptools["package-dir"]
    listed = set(setuptools["packages"])
    found = set()
    for name, folder in roots.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *relative.parts]))
    assert found == listed, f"missing from pyproject: {sorted(found - listed)}; stale: {sorted(listed - found)}"
    assert all(name.startswith("quarry_al.") for name in listed)


def test_distribution_and_command_names():
    assert PYPROJECT["project"]["name"] == "quarry-al"  # "quarry" on PyPI is another library
    assert PYPROJECT["project"]["scripts"] == {"quarry": "quarry_al.engine.cli:main"}


def test_torch_is_pinned_to_a_cpu_installable_release():
    assert "torch==2.13.0" in PYPROJECT["project"]["dependencies"]
