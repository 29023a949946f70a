"""The config-load checks of the ``serial``, ``hidpos`` and ``wedge`` source options.

:func:`drivers.registry.resolve_options` calls :func:`check_options` for a
hardware source when the config loads, so a profile that cannot serve the
source (no serial interface, no ``[hidpos]`` layout, no keyboard USB id) is
reported with its key before anything starts.  It sits apart from the readers
(it uses them: the HID POS check builds the same assembler the reader will),
and the registry imports it only when a config names such a source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers import profiles
from drivers.hidraw import new_assembler
from drivers.source_profiles import effective_protocol, load_source_profile, ssi_packets, usb_ids
from drivers.wedge_keys import LAYOUTS as KEYBOARD_LAYOUTS
from scanner_agent.kernel import ConfigError

__all__ = ["SERIAL_INTERFACES", "check_options"]

SERIAL_INTERFACES = ("rs232", "cdc-acm", "ssi-cdc")
"""Profile interfaces a ``serial`` source can read."""


def check_options(type_name: str, options: Mapping[str, Any], where: str) -> None:
    """Config-load checks of the ``serial``, ``hidpos`` and ``wedge`` keys.

    Raises:
        ConfigError: naming the key (``source[0].profile: ...``).
    """
    profile = load_source_profile(options["profile"], where)
    if not 0 < options["reconnect_max_s"] <= 3600:
        raise ConfigError(
            f"{where}.reconnect_max_s: expected 0 < seconds <= 3600, got {options['reconnect_max_s']}"
        )
    if type_name == "serial":
        if not options["port"]:
            raise ConfigError(f"{where}.port: expected a device path or URL, got ''")
        if not set(profile.interfaces) & set(SERIAL_INTERFACES):
            raise ConfigError(
                f"{where}.profile: profile {profile.id!r} has no serial interface "
                f"(interfaces: {', '.join(profile.interfaces)})"
            )
        protocol = options["protocol"]
        if protocol is not None and protocol not in profiles.PROTOCOLS:
            raise ConfigError(
                f"{where}.protocol: expected one of {', '.join(profiles.PROTOCOLS)}, got {protocol!r}"
            )
        baudrate = options["baudrate"]
        if baudrate is not None and not 50 <= baudrate <= 4_000_000:
            raise ConfigError(f"{where}.baudrate: expected 50..4000000, got {baudrate}")
        if effective_protocol(profile, protocol) == "ssi":
            for key in profiles.COMMAND_NAMES:
                command = getattr(profile.commands, key)
                if command is None:
                    continue
                try:
                    ssi_packets(command)
                except ValueError as exc:
                    raise ConfigError(
                        f"{where}.profile: [commands].{key} of {profile.id!r}: {exc}"
                    ) from None
    elif type_name == "hidpos":
        if profile.hidpos_report_layout is None:
            raise ConfigError(
                f"{where}.profile: profile {profile.id!r} has no [hidpos] layout "
                "(choose a profile for a HID POS scanner, e.g. generic-hidpos)"
            )
        try:  # the reader builds the same assembler from the profile's resolved layout
            new_assembler(profile)
        except ValueError as exc:
            raise ConfigError(f"{where}.profile: [hidpos] of {profile.id!r}: {exc}") from None
    elif type_name == "wedge":
        if "keyboard" not in profile.interfaces:
            raise ConfigError(
                f"{where}.profile: profile {profile.id!r} has no keyboard interface "
                f"(interfaces: {', '.join(profile.interfaces)})"
            )
        if options["layout"].lower() not in KEYBOARD_LAYOUTS:
            raise ConfigError(
                f"{where}.layout: expected one of {', '.join(sorted(KEYBOARD_LAYOUTS))}, "
                f"got {options['layout']!r}"
            )
        if not options["device"] and not usb_ids(profile, "keyboard"):
            raise ConfigError(
                f"{where}.device: missing: profile {profile.id!r} lists no keyboard USB id "
                'to find the scanner by; give device = "/dev/input/by-id/...-event-kbd"'
            )
