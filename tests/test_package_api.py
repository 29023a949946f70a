"""Each package's ``__all__`` is its whole public surface: every name in it resolves, and
every public name the package holds is in it (so a caller never reaches for a private module)."""

from __future__ import annotations

import importlib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("scanner_agent", "drivers", "firmware_profiles")
"""The top-level packages of the wheel."""

PACKAGES = sorted(
    ".".join(init.parent.relative_to(ROOT).parts)
    for top in LIBRARY
    for init in (ROOT / top).rglob("__init__.py")
)
"""Every package of the library, found on disk: a new one is checked without being listed."""

CONTAINERS = {
    "scanner_agent": "the agent: its API is its subpackages and modules",
    "drivers": "one public module per driver or protocol (drivers.tcp, drivers.registry, ...)",
    "firmware_profiles": "TOML data read with importlib.resources, no code",
    "scanner_agent.ops": "one public module per job (doctor, install, preflight, roles, logs, ...)",
}
"""Packages whose public surface is their modules: they hold no names, so ``__all__`` is empty."""


def test_the_packages_are_found() -> None:
    assert {"scanner_agent", "scanner_agent.kernel", "drivers", "firmware_profiles"} <= set(
        PACKAGES
    )


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_in_all_resolves_once(name: str) -> None:
    package = importlib.import_module(name)
    exported = list(package.__all__)
    assert bool(exported) is (name not in CONTAINERS), f"{name}: __all__ = {exported}"
    assert len(exported) == len(set(exported)), f"{name}: a name twice in __all__"
    for public in exported:
        assert not public.startswith("_"), f"{name}.{public}: private name exported"
        if not hasattr(package, public):
            # A submodule named in __all__ is loaded by ``from package import *``.
            importlib.import_module(f"{name}.{public}")
        assert getattr(package, public) is not None, f"{name}.{public}"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_of_the_package_is_in_all(name: str) -> None:
    package = importlib.import_module(name)
    held = {
        attr
        for attr, value in vars(package).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType)
        and attr != "annotations"  # from __future__
    }
    assert held <= set(package.__all__), (
        f"{name}: public but not in __all__: {held - set(package.__all__)}"
    )
