"""What a hardware source reads from its firmware profile: the profile a ``[[source]]`` names,
its serial protocol, USB ids and SSI commands, and its one-line description (the readers', and
:mod:`drivers.device_options`' at config load)."""

from __future__ import annotations

from drivers import profiles
from drivers.profiles import Profile
from scanner_agent.kernel import (
    ConfigError,
)

PROFILE_DIRS = (profiles.SITE_PROFILE_DIR,)
"""Where site profiles are looked for, besides the shipped ones."""


def load_source_profile(name: str, where: str) -> Profile:
    """The firmware profile a ``[[source]]`` names (shipped or in the site directory).

    Raises:
        ConfigError: ``<where>.profile`` names no valid profile.
    """
    try:
        return profiles.load_profile(name, extra_dirs=PROFILE_DIRS)
    except profiles.ProfileError as exc:
        raise ConfigError(f"{where}.profile: {exc}") from None


def ssi_packets(command: bytes) -> list[bytes]:
    """Split a profile command into SSI packets.

    Raises:
        ValueError: the bytes are not a run of whole, valid SSI packets.
    """
    from drivers.ssi import SsiFramer, SsiPacket

    framer = SsiFramer()
    events = framer.feed(command)
    packets = [e.encode() for e in events if isinstance(e, SsiPacket)]
    if framer.buffered or len(packets) != len(events) or not packets:
        raise ValueError(f"Failed to use {command!r} as SSI command: not whole SSI packets")
    return packets


def effective_protocol(profile: Profile, protocol: str | None) -> str:
    """The serial protocol used: the source's, else the profile's, else ``plain``."""
    if protocol:
        return protocol
    if profile.serial is not None and profile.serial.protocol:
        return profile.serial.protocol
    return "plain"


def usb_ids(profile: Profile, mode: str) -> list[tuple[int, int]]:
    """The profile's ``(vid, pid)`` pairs for one USB mode."""
    return [(u.vid, u.pid) for u in profile.usb_ids if u.mode == mode]


def describe(profile: Profile) -> str:
    """``Vendor Model`` for status lines."""
    return f"{profile.vendor} {profile.model}"
