"""Names of a package imported when first used (PEP 562), so the package itself stays light.

A sink package's settings and pure protocol parts are read by the config,
which every command loads; its client and sink bring httpx, the sync loop and
the outbox.  The package's ``__init__`` imports the light parts and hands the
rest to :func:`lazy_exports`; ``from package import Name`` works the same
either way, and a type checker reads the names from the package's
``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, modules: Mapping[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each name of ``modules[module]`` comes from
    ``package.<module>``, imported when the name is first asked for (then kept).

    >>> getattr_ = lazy_exports("json", {"decoder": ("JSONDecodeError",)})
    >>> getattr_("JSONDecodeError").__name__
    'JSONDecodeError'
    """
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
