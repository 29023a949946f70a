"""The roles one install serves, the libraries each needs, and how to add a missing one.

One box does several jobs: the daemon, the dispatch terminal (``tui``),
camera decoding (``decode`` and ``camera`` sources), keyboard-wedge scanners,
hot-plug by udev events and raw USB HID.  Each job beyond the daemon needs
Python libraries that the package declares as an extra (``pyproject.toml``);
``make install`` and the Debian package install every extra, a slim install
(``make install INSTALL_EXTRAS=``) leaves some out.  This module is the one
table of that (:data:`ROLES`), so ``doctor`` can say which roles this install
serves, config validation can refuse a source whose driver cannot load, and
every "not installed" message gives the same hint (:func:`install_hint`),
one that fits how this agent was installed: a source install into
``/opt/scanner-agent`` is told to re-run ``make install``, the Debian
package to reinstall the package, a pip environment to pip install the
extra; never a hint that sends a box to a package index it does not use.

How it was installed is written by the installer next to the venv
(:data:`INSTALL_INFO`, see :mod:`scanner_agent.ops.install`); without that file
the agent runs from a pip environment (a developer's venv).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner_agent.kernel import ConfigError

__all__ = [
    "INSTALL_INFO",
    "ROLES",
    "DriverUnavailable",
    "InstallInfo",
    "Role",
    "check_driver",
    "install_hint",
    "install_info",
    "missing_distribution",
    "missing_library",
    "required_distributions",
    "role",
    "role_hint",
    "role_problem",
]

INSTALL_INFO = "scanner-agent-install.json"
"""File in the venv's root (``sys.prefix``) saying how the installer put this agent there."""
MAKE_INSTALL = "make install"
DEBIAN_PACKAGE = "debian package"


@dataclass(frozen=True, slots=True)
class Role:
    """A job this box can do and what it imports."""

    name: str
    extra: str
    """The ``pyproject.toml`` extra that installs its libraries; empty for the core."""
    modules: tuple[str, ...]
    """Modules that must import, beyond the extra's distributions being installed: the ones
    that load a C library (which only an import proves) or the agent's own entry points."""
    what: str
    """What the role is, for people."""
    debian: tuple[str, ...] = ()
    """Debian packages of the C libraries its modules load (the Debian package depends on them)."""
    optional: bool = False
    """Not part of a full install's promise: only a source that asks for it needs it."""


ROLES: tuple[Role, ...] = (
    Role(
        "daemon",
        "",
        ("scanner_agent.daemon", "scanner_agent.sync", "scanner_agent.ops.metrics"),
        "the agent service: tcp, serial, hidpos (hidraw) and replay sources, sync, control",
    ),
    Role("tui", "tui", ("textual",), "the dispatch terminal (`scanner-agent tui`)"),
    Role(
        "camera",
        "camera",
        ("zxingcpp", "cv2", "numpy"),
        "camera sources and `scanner-agent decode` (zxing-cpp, OpenCV)",
    ),
    Role("wedge", "wedge", ("evdev",), "keyboard-wedge sources (python-evdev)"),
    Role("hotplug", "hotplug", ("pyudev",), "opening a scanner the moment it is plugged in"),
    Role(
        "usb",
        "usb",
        ("usb.core",),
        "hidpos sources with backend = pyusb (no hidraw)",
        debian=("libusb-1.0-0",),
    ),
    Role(
        "zbar",
        "camera",
        ("pyzbar.pyzbar",),
        'the second camera decoder (used by decoder = "auto" where present; "pyzbar" and "both" need it)',
        debian=("libzbar0",),
        optional=True,
    ),
)
"""Every role, the core first.  ``zbar`` is optional: the default decoder (``auto``) uses ZBar
where it is installed and goes on with zxing-cpp alone where not; only a camera source asking
for pyzbar or both needs it."""


def role(name: str) -> Role:
    """The role called ``name``.

    Raises:
        KeyError: no such role.
    """
    for r in ROLES:
        if r.name == name:
            return r
    raise KeyError(name)


def missing_library(modules: tuple[str, ...]) -> str | None:
    """Why the first of ``modules`` that will not import does not, or None when all do.

    Importing is the only honest test: a module can be present and still fail
    to load (a shared library it opens is missing).
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return str(exc) or f"No module named {module!r}"
        except OSError as exc:  # a ctypes library loaded at import time (libzbar, libudev)
            return f"{module}: {exc}"
    return None


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def required_distributions(extra: str, distribution: str = "scanner-agent") -> list[str]:
    """The distributions ``pyproject.toml`` lists for ``extra`` ("" for the core), read from
    the installed metadata: the one list of dependencies, not a copy of it.  Empty when the
    agent runs from a checkout that was never installed (no metadata)."""
    try:
        requirements = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    out = []
    for requirement in requirements:
        name = _NAME.match(requirement)
        marker = _EXTRA.search(requirement)
        if name is None or name.group(0) == distribution:
            continue  # the "all" extra names the others
        if (marker.group(1) if marker else "") == extra:
            out.append(name.group(0))
    return out


def missing_distribution(names: list[str]) -> str | None:
    """The first of ``names`` that is not installed, said as such, or None."""
    for name in names:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return f"{name} is not installed"
    return None


def role_problem(name: str) -> str | None:
    """Why role ``name`` cannot work in this install, or None when it can: each distribution
    of its extra is installed and its modules import."""
    r = role(name)
    return missing_distribution(required_distributions(r.extra)) or missing_library(r.modules)


@dataclass(frozen=True, slots=True)
class InstallInfo:
    """How this agent was installed (:data:`INSTALL_INFO`)."""

    method: str
    """``make install``, ``debian package``, or ``pip`` (no info file: a pip environment)."""
    extras: tuple[str, ...] = ()
    """The extras the installer asked for (``all`` stands for every one)."""
    source: str = ""
    """The source checkout ``make install`` ran from."""

    def has_extra(self, extra: str) -> bool:
        """Whether the installer asked for ``extra``."""
        return "all" in self.extras or extra in self.extras


def install_info(prefix: str | Path | None = None) -> InstallInfo:
    """What the installer wrote in ``prefix`` (default ``sys.prefix``, the running venv)."""
    path = Path(sys.prefix if prefix is None else prefix) / INSTALL_INFO
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return InstallInfo("pip")
    if not isinstance(data, dict):
        return InstallInfo("pip")
    extras = data.get("extras")
    return InstallInfo(
        str(data.get("method") or "pip"),
        tuple(str(e) for e in extras) if isinstance(extras, list) else (),
        str(data.get("source") or ""),
    )


def role_hint(name: str, info: InstallInfo | None = None) -> str:
    """How to make role ``name`` work here: its extra (:func:`install_hint`), and its Debian
    packages when it loads C libraries."""
    r = role(name)
    hint = install_hint(r.extra, info) if r.extra else "reinstall the agent"
    if r.debian:
        debs = " ".join(r.debian)
        hint += f"; it also needs the Debian package {debs} (`sudo apt-get install {debs}`)"
    return hint


def install_hint(extra: str, info: InstallInfo | None = None) -> str:
    """How to add ``extra``'s libraries to this install, as one sentence for an error or hint."""
    info = install_info() if info is None else info
    if info.method == DEBIAN_PACKAGE:
        return (
            "the scanner-agent package ships every role, so its venv is damaged: "
            "`sudo apt install --reinstall scanner-agent`"
        )
    if info.method == MAKE_INSTALL:
        source = info.source or "the source checkout"
        if info.has_extra(extra):
            return f"reinstall from {source}: `sudo make install` there"
        return (
            f"this install left the {extra} extra out (INSTALL_EXTRAS={','.join(info.extras)}); "
            f"install every role from {source}: `sudo make install` there"
        )
    checkout = Path(__file__).resolve().parents[2]
    pip = Path(sys.prefix) / "bin" / "pip"
    if (checkout / "pyproject.toml").is_file():  # running from a source checkout (make venv)
        return f"install the {extra} extra: `{pip} install -e '{checkout}[{extra}]'`"
    return f"install the {extra} extra: `{pip} install 'scanner-agent[{extra}]'`"


class DriverUnavailable(ConfigError):
    """A source's driver cannot load here: ``str()`` is ``key: message: hint``."""

    def __init__(self, key: str, message: str, hint: str) -> None:
        super().__init__(f"{key}: {message}: {hint}")
        self.key = key
        self.message = message
        self.hint = hint

    @property
    def detail(self) -> str:
        """``key: message``, without the hint."""
        return f"{self.key}: {self.message}"


def check_driver(type_name: str, options: Mapping[str, Any], where: str) -> None:
    """Whether the driver of a ``[[source]]`` table loads here: its module and the libraries
    it will import (the roles its :class:`drivers.registry.SourceType` ``needs``).

    Drivers import their libraries lazily (only a configured source type loads
    its library), so a missing one would otherwise surface only when ``run``
    starts the source.  ``check-config`` and ``run`` (preflight, before anything
    is touched) and ``doctor`` call this for every source.

    Raises:
        ConfigError: the options are invalid.
        DriverUnavailable: a module does not load; names the source, the library and
            how to add it to this install.
    """
    from drivers.registry import SOURCE_TYPES, resolve_options

    resolved = resolve_options(type_name, options, where)
    st = SOURCE_TYPES[type_name]
    module_name = st.factory.partition(":")[0]
    try:
        importlib.import_module(module_name)
    except ImportError as exc:
        raise DriverUnavailable(
            f"{where}.type",
            f"the {type_name} driver ({module_name}) does not load: {exc}",
            "reinstall the agent",
        ) from exc
    for name in st.needs(resolved):
        problem = role_problem(name)
        if problem is not None:
            r = role(name)
            raise DriverUnavailable(
                f"{where}.type",
                f"the {type_name} driver needs {', '.join(r.modules)}, which this install "
                f"lacks ({problem}; {r.what})",
                role_hint(name),
            )
