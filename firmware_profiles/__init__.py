"""Firmware profiles shipped with the agent: one ``<id>.toml`` per scanner model.

Data only, read with ``importlib.resources`` by :mod:`drivers.profiles`
(schema: docs/firmware-profiles.md).
"""

__all__: list[str] = []
