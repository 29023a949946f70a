"""HID POS reports as real engines send them, and a site profile that defines a layout of its own."""

from __future__ import annotations


def newland_report(data: bytes, *, more: bool = False) -> bytes:
    """64 bytes as a Newland engine sends them: ID 2, length, 56 data, 4 reserved,
    Newland symbology ID, flags (bit 0 = continued)."""
    assert len(data) <= 56
    return bytes([0x02, len(data)]) + data.ljust(56, b"\0") + bytes(4) + b"u" + bytes([int(more)])


# A site's scanner whose reports match no named layout: report ID 3, the AIM identifier
# first, then the length, 32 data bytes, and the continuation flag in bit 7 of byte 37.
ACME_PROFILE = """
[profile]
vendor = "Acme"
model = "S9 (site profile)"
interfaces = ["hid-pos"]

[hidpos]
report_size = 40
report_id = 0x03
aim_offset = 1
length_offset = 4
data_offset = 5
data_size = 32
continuation_offset = 37
continuation_mask = 0x80
"""


# Two reports of one GS1 DataMatrix (]d2): 32 + 9 data bytes, GS kept.
ACME_REPORTS = [
    bytes.fromhex(
        "03 5d 64 32 20"  # ID 3, ]d2, 32 bytes
        "30 31 30 36 39 30 31 32 33 34 35 36 37 38 39 32"  # 0106901234567892
        "31 37 32 38 30 35 30 30 31 30 4c 4f 54 31 1d 32"  # 17280500 10 LOT1 GS 2
        "80 00 00"  # continued (bit 7), reserved
    ),
    bytes.fromhex(
        "03 5d 64 32 09"  # ID 3, ]d2, 9 bytes
        "31 53 45 52 49 41 4c 30 31"
        + "00" * 23  # 1SERIAL01
        + "00 00 00"  # last report
    ),
]
