"""The outbox package's public names: what other packages may import, and nothing private."""

from __future__ import annotations

import importlib
import pkgutil

import scanner_agent.outbox as outbox


def test_every_public_name_of_the_outbox_is_there_and_public() -> None:
    for name in outbox.__all__:
        value = getattr(outbox, name)
        assert value is not None, name
        assert not name.startswith("_"), name
    assert {"Outbox", "OutboxThread", "check_file", "FileCheck"} <= set(outbox.__all__)


def test_every_private_module_says_what_it_offers_and_has_it() -> None:
    for info in pkgutil.iter_modules(outbox.__path__):
        module = importlib.import_module(f"scanner_agent.outbox.{info.name}")
        names = getattr(module, "__all__", None)
        assert names, f"scanner_agent.outbox.{info.name} has no __all__"
        for name in names:
            assert hasattr(module, name), f"{info.name}.{name}"
