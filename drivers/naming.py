"""How a source is labelled in logs, scans and the status: its name, else ``<type>:<main option>``.

The rule lives here, not in :mod:`drivers.registry`, because the registry imports each driver
by name (its factory table) and a driver labels itself when it is built: with the rule in the
registry, every driver would import the module that imports it. The registry's
:func:`~drivers.registry.source_name` applies the same rule with the main option its table
names.
"""

from __future__ import annotations

__all__ = ["source_label"]


def source_label(type_name: str, name: str, main_value: object) -> str:
    """``name`` when one is given, else the source's type and its main option's value.

    >>> source_label("tcp", "", "0.0.0.0:9100")
    'tcp:0.0.0.0:9100'
    >>> source_label("serial", "dock-3", "/dev/ttyACM0")
    'dock-3'
    """
    return name or f"{type_name}:{main_value}"
