"""Each package's ``__all__`` is its whole public surface: every name in it resolves, and
every public name the package holds is in it (so a caller never reaches for a private module)."""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = [
    "scanner_agent.exports",
    "scanner_agent.lab",
    "scanner_agent.outbox",
    "scanner_agent.sinks",
    "scanner_agent.sinks.alihealth",
    "scanner_agent.sinks.epcis",
    "scanner_agent.sinks.trace_api",
    "scanner_agent.sync",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_in_all_resolves_once(name: str) -> None:
    package = importlib.import_module(name)
    exported = list(package.__all__)
    assert exported, f"{name}: empty __all__"
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
