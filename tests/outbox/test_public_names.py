"""The outbox's private modules each say what they offer (``__all__``), and have it.

The package's own ``__all__`` is checked with every package's in ``tests/test_package_api.py``.
"""

from __future__ import annotations

import importlib
import pkgutil

import scanner_agent.outbox as outbox


def test_every_private_module_says_what_it_offers_and_has_it() -> None:
    for info in pkgutil.iter_modules(outbox.__path__):
        module = importlib.import_module(f"scanner_agent.outbox.{info.name}")
        names = getattr(module, "__all__", None)
        assert names, f"scanner_agent.outbox.{info.name} has no __all__"
        for name in names:
            assert hasattr(module, name), f"{info.name}.{name}"
