"""HID POS input reports: per-vendor layouts and joining continued reports."""

from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.framing import Frame, FrameError
from drivers.hidpos import (
    FIELDS,
    LAYOUTS,
    HidPosAssembler,
    HidPosLayout,
    LayoutError,
    resolve_layout,
)
from drivers.hidraw import ReportSplitter, new_assembler, report_layout
from drivers.profiles import PACKAGE, load_profile, parse_profile
from tests.support.hidpos import ACME_PROFILE, ACME_REPORTS, newland_report


def honeywell_report(data: bytes, aim: bytes = b"]d2", *, more: bool = False) -> bytes:
    """64 bytes as a Honeywell scanner sends them: ID 2, length, AIM, 56 data,
    2 bytes Honeywell code ID, flags (bit 0 = continued)."""
    assert len(data) <= 56
    return bytes([0x02, len(data)]) + aim + data.ljust(56, b"\0") + b"w\0" + bytes([int(more)])


GS1 = b"010690123456789017250101" + b"\x1d" + b"10ABC123" + b"\x1d" + b"21" + b"S" * 40


def test_honeywell_single_report_gives_aim_prefixed_frame() -> None:
    assembler = HidPosAssembler(LAYOUTS["honeywell"])
    assert assembler.feed(honeywell_report(b"12345678901234567890", b"]C0")) == [
        Frame(b"]C012345678901234567890")
    ]


def test_honeywell_continued_reports_are_joined_and_keep_gs() -> None:
    assembler = HidPosAssembler(LAYOUTS["honeywell"])
    assert assembler.feed(honeywell_report(GS1[:56], more=True)) == []
    assert assembler.buffered > 0
    assert assembler.feed(honeywell_report(GS1[56:])) == [Frame(b"]d2" + GS1)]
    assert assembler.buffered == 0


def test_recorded_style_honeywell_menu_reply_report() -> None:
    # Shape of the last report of a REVINF reply over HID POS: AIM ]Z6, echo, ACK, '.'.
    report = honeywell_report(b"REVINF\x06.", b"]Z6")
    assert HidPosAssembler(LAYOUTS["honeywell"]).feed(report) == [Frame(b"]Z6REVINF\x06.")]


def test_aim_prefix_can_be_left_out() -> None:
    assembler = HidPosAssembler(LAYOUTS["honeywell"], aim_prefix=False)
    assert assembler.feed(honeywell_report(b"ABC", b"]C0")) == [Frame(b"ABC")]


def test_aim_bytes_that_are_not_an_aim_id_are_not_prefixed() -> None:
    assembler = HidPosAssembler(LAYOUTS["honeywell"])
    assert assembler.feed(honeywell_report(b"ABC", b"\0\0\0")) == [Frame(b"ABC")]


@pytest.mark.parametrize("vendor", ["zebra", "datalogic", "generic"])
def test_usage_table_layouts_read_the_same_report_shape(vendor: str) -> None:
    assembler = HidPosAssembler(LAYOUTS[vendor])
    events = assembler.feed(honeywell_report(GS1[:56], b"]d2", more=True))
    events += assembler.feed(honeywell_report(GS1[56:], b"]d2"))
    assert events == [Frame(b"]d2" + GS1)]


def test_newland_reports_have_no_aim_field_and_join_on_the_continued_bit() -> None:
    assembler = HidPosAssembler(LAYOUTS["newland"])
    assert assembler.feed(newland_report(GS1[:56], more=True)) == []
    assert assembler.feed(newland_report(GS1[56:])) == [Frame(GS1)]


def test_reports_with_another_report_id_are_ignored_and_counted() -> None:
    assembler = HidPosAssembler(LAYOUTS["honeywell"])
    assert assembler.feed(bytes([0x04, 0x01]) + bytes(62)) == []
    assert assembler.ignored_reports == 1


def test_short_report_is_dropped_and_reported() -> None:
    assembler = HidPosAssembler(LAYOUTS["honeywell"])
    events = assembler.feed(honeywell_report(b"ABC")[:20])
    assert events == [FrameError("short report (20 of 64 bytes)", 20)]


def test_length_byte_beyond_the_data_room_is_reported() -> None:
    report = bytearray(honeywell_report(b"ABC"))
    report[1] = 57
    events = HidPosAssembler(LAYOUTS["honeywell"]).feed(bytes(report))
    assert isinstance(events[0], FrameError)
    assert "length byte 57" in events[0].reason


def test_bar_code_longer_than_the_cap_is_dropped_until_its_last_report() -> None:
    assembler = HidPosAssembler(LAYOUTS["honeywell"], max_frame=60)
    events = assembler.feed(honeywell_report(b"A" * 56, more=True))
    events += assembler.feed(honeywell_report(b"B" * 56, more=True))
    events += assembler.feed(honeywell_report(b"C" * 10))
    assert all(isinstance(e, FrameError) for e in events)
    assert assembler.feed(honeywell_report(b"OK", b"]C0")) == [Frame(b"]C0OK")]


def test_unnumbered_layout_without_length_strips_nul_padding() -> None:
    layout = HidPosLayout(
        report_size=60,
        report_id=None,
        length_offset=None,
        aim_offset=0,
        data_offset=3,
        data_size=56,
        continuation_offset=59,
    )
    report = b"]C0" + b"XYZ".ljust(56, b"\0") + b"\0"
    assert HidPosAssembler(layout).feed(report) == [Frame(b"]C0XYZ")]


def test_layout_whose_fields_overrun_the_report_is_refused() -> None:
    with pytest.raises(LayoutError, match="past the report size"):
        HidPosLayout(report_size=10, data_offset=5, data_size=56, continuation_offset=9)


@given(
    st.sampled_from(sorted(LAYOUTS)),
    st.lists(st.binary(max_size=80), max_size=40),
    st.integers(1, 300),
)
def test_arbitrary_reports_never_raise_and_stay_under_the_cap(
    name: str, reports: list[bytes], cap: int
) -> None:
    assembler = HidPosAssembler(LAYOUTS[name], max_frame=cap)
    for report in reports:
        for event in assembler.feed(report):
            if isinstance(event, Frame):
                assert len(event.data) <= cap
        assert assembler.buffered <= cap


@given(st.binary(min_size=1, max_size=500))
def test_any_bar_code_split_into_honeywell_reports_comes_back_whole(data: bytes) -> None:
    chunks = [data[i : i + 56] for i in range(0, len(data), 56)]
    assembler = HidPosAssembler(LAYOUTS["honeywell"])
    events = []
    for index, chunk in enumerate(chunks):
        events += assembler.feed(honeywell_report(chunk, more=index < len(chunks) - 1))
    assert events == [Frame(b"]d2" + data)]


# -- layouts as profile data -------------------------------------------------------------


def test_a_site_profile_defining_a_new_layout_decodes_recorded_reports(tmp_path: Path) -> None:
    (tmp_path / "acme-s9.toml").write_text(ACME_PROFILE, encoding="utf-8")
    profile = load_profile("acme-s9", [tmp_path])
    assert profile.hidpos_layout is None  # no named base: the profile's own layout
    assert profile.hidpos_report_layout == HidPosLayout(
        report_size=40,
        report_id=3,
        aim_offset=1,
        length_offset=4,
        data_offset=5,
        data_size=32,
        continuation_offset=37,
        continuation_mask=0x80,
    )
    assembler = new_assembler(profile)
    splitter = ReportSplitter(report_layout(profile))
    events = [e for r in splitter.feed(b"".join(ACME_REPORTS)) for e in assembler.feed(r)]
    assert events == [Frame(b"]d2010690123456789217280500" + b"10LOT1\x1d21SERIAL01")]
    # The same reports read with a named layout are not this scanner's.
    assert HidPosAssembler(LAYOUTS["generic"]).feed(ACME_REPORTS[0]) == []


def test_a_profile_overrides_fields_of_a_named_layout() -> None:
    profile = parse_profile(
        "x",
        '[profile]\nvendor = "A"\nmodel = "B"\ninterfaces = ["hid-pos"]\n'
        '[hidpos]\nlayout = "honeywell"\naim_offset = false\ncontinuation_mask = 0x02\n',
    )
    assert profile.hidpos_layout == "honeywell"
    layout = profile.hidpos_report_layout
    assert layout == dataclasses.replace(
        LAYOUTS["honeywell"], aim_offset=None, continuation_mask=0x02
    )
    first = bytes([2, 56]) + b"]C0" + GS1[:56] + b"\0\0\x02"
    last = bytes([2, len(GS1) - 56]) + b"]C0" + GS1[56:].ljust(56, b"\0") + b"\0\0\x01"
    assembler = new_assembler(profile)
    assert assembler.feed(first) == []
    assert assembler.feed(last) == [Frame(GS1)]  # bit 0 is not the flag here; no AIM field


@pytest.mark.parametrize("stem", ["honeywell-xenon-1900g", "newland-hr22"])
def test_shipped_profiles_state_the_values_of_their_named_layout(stem: str) -> None:
    text = (resources.files(PACKAGE) / f"{stem}.toml").read_text(encoding="utf-8")
    profile = load_profile(stem)
    assert profile.hidpos_layout is not None
    assert profile.hidpos_report_layout == LAYOUTS[profile.hidpos_layout]
    table = tomllib.loads(text)["hidpos"]
    assert set(FIELDS) <= set(table), "every field is written out, with its source"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"report_size": 0}, "report_size", "expected 1..4096"),
        ({"report_size": 32}, "data_size", "ends past the report size (32 bytes)"),
        ({"continuation_offset": 64}, "continuation_offset", "outside the 64-byte report"),
        ({"aim_offset": 1}, "aim_offset", "overlaps the length byte (bytes 1..1)"),
        ({"length_offset": 0}, "length_offset", "overlaps the report ID"),
        ({"continuation_offset": 10}, "continuation_offset", "overlaps the data"),
        ({"report_id": 0}, "report_id", "expected 1..255"),
        ({"continuation_mask": 0}, "continuation_mask", "one byte's bits"),
        ({"nope": 1}, "nope", "unknown field"),
    ],
)
def test_bad_layout_fields_are_named(fields: dict[str, int], field: str, message: str) -> None:
    with pytest.raises(LayoutError) as info:
        resolve_layout(LAYOUTS["honeywell"], fields)
    assert info.value.field == field
    assert message in info.value.message


def test_a_layout_without_a_base_needs_every_field() -> None:
    with pytest.raises(LayoutError, match="data_offset: missing"):
        resolve_layout(None, {"report_size": 64})
    full = {f: getattr(LAYOUTS["newland"], f) for f in FIELDS if f != "continuation_mask"}
    assert resolve_layout(None, full) == LAYOUTS["newland"]
