"""The hidraw reader: a pty stands in for /dev/hidrawN (os.read works on both)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import hidraw
from drivers.framing import Frame
from drivers.hidpos import LAYOUTS, HidPosAssembler
from drivers.hidraw import HidPosSource, ReportSplitter, feedback_report
from drivers.profiles import (
    PACKAGE,
    HidPosFeedback,
    Profile,
    load_profile,
    parse_profile,
)
from drivers.reader import open_device_fd
from scanner_agent.kernel import DeviceUnavailable, ScanOutcome, Verdict
from tests.drivers.emulators import PtyScanner
from tests.drivers.fake_sysfs import HID_POS_DESCRIPTOR, FakeSysfs
from tests.support.drivers import AgentRun, cn20
from tests.support.hidpos import ACME_PROFILE, ACME_REPORTS
from tests.support.polling import eventually

RunSource = Callable[[HidPosSource], Awaitable[AgentRun]]
LAYOUT = LAYOUTS["honeywell"]
GS1 = "]d2010690123456789217280500" + "10LOT-2024-0001-ABCDEF" + "\x1d" + "21SERIAL0123456789ABCD"
DRIVERS_DOC = Path(__file__).resolve().parents[2] / "docs" / "drivers.md"
GS1_HRI = "(01)06901234567892(17)280500(10)LOT-2024-0001-ABCDEF(21)SERIAL0123456789ABCD"


def reports(code: str, aim: bytes = b"]C0") -> list[bytes]:
    """Honeywell-layout input reports for one bar code (56 data bytes each)."""
    data = code.encode()
    if data.startswith(b"]"):
        aim, data = data[:3], data[3:]
    chunks = [data[i : i + 56] for i in range(0, len(data), 56)] or [b""]
    out = []
    for index, chunk in enumerate(chunks):
        more = 1 if index < len(chunks) - 1 else 0
        out.append(bytes([2, len(chunk)]) + aim + chunk.ljust(56, b"\0") + b"\0\0" + bytes([more]))
    return out


@pytest.fixture
def node(tmp_path: Path) -> Iterator[PtyScanner]:
    emu = PtyScanner(tmp_path / "hidraw-link")
    yield emu
    emu.close()


def source_for(path: Path | str, profile: Profile | None = None, **kwargs: Any) -> HidPosSource:
    return HidPosSource(
        "hidpos:test",
        str(path),
        profile=profile or load_profile("honeywell-xenon-1900g"),
        reconnect_initial_s=0.01,
        reconnect_max_s=0.05,
        **kwargs,
    )


def test_report_splitter_cuts_joins_and_passes_other_report_ids() -> None:
    splitter = ReportSplitter(LAYOUT)
    one, two = reports(cn20(1))[0], reports(cn20(2))[0]
    assert splitter.feed(one[:10]) == []
    assert splitter.buffered == 10
    assert splitter.feed(one[10:] + two) == [one, two]
    assert splitter.feed(b"\x04\x01\x02") == [b"\x04\x01\x02"]  # a status report: passed whole
    assert splitter.buffered == 0


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=200), max_size=30),
    layout=st.sampled_from(sorted(LAYOUTS)),
)
def test_splitter_and_assembler_never_raise_and_stay_under_their_caps(
    chunks: list[bytes], layout: str
) -> None:
    splitter = ReportSplitter(LAYOUTS[layout])
    assembler = HidPosAssembler(LAYOUTS[layout], max_frame=100)
    for chunk in chunks:
        for report in splitter.feed(chunk):
            for event in assembler.feed(report):
                if isinstance(event, Frame):
                    assert len(event.data) <= 100
        assert splitter.buffered < LAYOUTS[layout].report_size
        assert assembler.buffered <= 100


async def test_reports_from_the_node_are_assembled_and_committed(
    node: PtyScanner, run_source: RunSource
) -> None:
    source = source_for(node.link)
    agent = await run_source(source)
    await eventually(lambda: source.connected)

    for report in reports(cn20(1)):
        node.write(report)
    node.write(b"".join(reports(GS1)))  # two reports (continuation bit) in one write
    for report in reports(cn20(2)):
        node.write(report, dribble=True)  # a byte at a time
    node.write(b"\x04" + bytes(63))  # another report ID: ignored
    await eventually(lambda: source.scans == 3)
    assert len(reports(GS1)) == 2

    node.unplug()
    await eventually(lambda: not source.connected)
    node.plug()
    await eventually(lambda: source.connected)
    node.write(reports(cn20(3))[0])
    await eventually(lambda: source.scans == 4)

    assert await agent.stop() == [cn20(1), GS1_HRI, cn20(2), cn20(3)]
    assert source.connects == 2
    assert source.errors == 1  # the unplug
    assert source.last_outcome is not None
    assert source.last_outcome.accepted


async def test_a_malformed_report_is_counted_not_committed(
    node: PtyScanner, run_source: RunSource
) -> None:
    source = source_for(node.link)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    bad = bytearray(reports(cn20(5))[0])
    bad[1] = 60  # length byte beyond the 56 data bytes
    node.write(bytes(bad))
    node.write(reports(cn20(6))[0])
    await eventually(lambda: source.scans == 1)
    assert source.errors == 1
    assert await agent.stop() == [cn20(6)]


def test_the_node_is_found_by_the_profiles_usb_ids_or_the_hid_pos_usage_page(
    tmp_path: Path,
) -> None:
    fake = FakeSysfs(tmp_path / "sys")
    usb = fake.usb_device("1-1", 0x1EAB, 0x1A10, serial="A1")
    fake.hidraw(
        4,
        fake.interface(usb, 0, "usbhid"),
        vid=0x1EAB,
        pid=0x1A10,
        name="HR22",
        descriptor=HID_POS_DESCRIPTOR,
    )
    newland = load_profile("newland-hr22")
    generic = load_profile("generic-hidpos")
    found = HidPosSource("s", profile=newland, sysfs=fake.root, dev=tmp_path / "dev")
    assert found.find() == str(tmp_path / "dev" / "hidraw4")
    by_page = HidPosSource("s", profile=generic, sysfs=fake.root, dev="/dev")
    assert by_page.find() == "/dev/hidraw4"
    other = HidPosSource("s", profile=newland, usb_serial="B2", sysfs=fake.root)
    assert other.find() is None
    with pytest.raises(DeviceUnavailable, match="USB serial 'B2'"):
        other._open()


def test_a_profile_without_a_hidpos_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="no \\[hidpos\\] layout"):
        HidPosSource("s", "/dev/hidraw0", profile=load_profile("generic-serial"))


# -- feedback: output reports after the commit ---------------------------------------------

FEEDBACK = parse_profile(
    "test-hidpos-feedback",
    """
[profile]
vendor = "Test"
model = "HID POS with output reports"
interfaces = ["hid-pos"]
[hidpos]
layout = "honeywell"
good_read = "\\u00FD\\u0001G"
bad_read = "\\u00FD\\u0001B"
duplicate_read = "\\u00FD\\u0001D"
""",
)


def test_the_output_report_follows_the_verdict_and_duplicate_falls_back_to_bad() -> None:
    fb = FEEDBACK.hidpos_feedback
    assert feedback_report(fb, ScanOutcome(Verdict.ACCEPTED, "x")) == b"\xfd\x01G"
    assert feedback_report(fb, ScanOutcome(Verdict.DUPLICATE, "x")) == b"\xfd\x01D"
    for verdict in (Verdict.INVALID, Verdict.FULL, Verdict.ERROR):
        assert feedback_report(fb, ScanOutcome(verdict, "x")) == b"\xfd\x01B"
    only_bad = HidPosFeedback(bad_read=b"\xfd\x01B")
    assert feedback_report(only_bad, ScanOutcome(Verdict.DUPLICATE, "x")) == b"\xfd\x01B"
    assert feedback_report(only_bad, ScanOutcome(Verdict.ACCEPTED, "x")) is None
    assert not HidPosFeedback().any


async def test_output_reports_reach_the_node_after_each_commit_in_scan_order(
    node: PtyScanner, run_source: RunSource
) -> None:
    source = source_for(node.link, profile=FEEDBACK)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    for code in (cn20(20), cn20(20), "6901234567892", cn20(21)):
        node.write(reports(code)[0])
    await eventually(lambda: len(node.received) == 12)
    assert bytes(node.received) == b"\xfd\x01G" + b"\xfd\x01D" + b"\xfd\x01B" + b"\xfd\x01G"
    assert await agent.stop() == [cn20(20), cn20(21)]


def test_shipped_honeywell_hid_pos_profiles_set_no_output_report() -> None:
    # No Honeywell document gives one; the community value is in docs/drivers.md only.
    for stem in ("honeywell-xenon-1900g", "honeywell-xenon-1950g", "honeywell-voyager-1450g"):
        assert load_profile(stem).hidpos_feedback == HidPosFeedback(), stem


async def test_a_shipped_profile_without_output_reports_opens_the_node_read_only(
    node: PtyScanner, run_source: RunSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = open_device_fd
    modes: list[bool] = []

    def recording(path: str, *, exclusive: bool = True, writable: bool = False) -> int:
        modes.append(writable)
        return real_open(path, exclusive=exclusive, writable=writable)

    monkeypatch.setattr(hidraw, "open_device_fd", recording)
    source = source_for(node.link)  # honeywell-xenon-1900g as shipped
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    node.write(reports(cn20(24))[0])
    await eventually(lambda: source.last_outcome is not None and source.last_outcome.accepted)
    assert modes == [False]
    assert bytes(node.received) == b""
    assert await agent.stop() == [cn20(24)]


def documented_honeywell_beep() -> str:
    """The ``good_read`` line docs/drivers.md offers for a local profile (unconfirmed value)."""
    doc = DRIVERS_DOC.read_text(encoding="utf-8")
    lines = [m.group(0) for m in re.finditer(r"^good_read = .*$", doc, flags=re.MULTILINE)]
    assert len(lines) == 1, lines
    return lines[0]


def local_profile_with_documented_beep(site: Path) -> Profile:
    """What docs/drivers.md tells an installer to do, done in ``site``.

    Copy the shipped profile into the site directory under the same name (it replaces the
    shipped one) and add the documented ``good_read`` line to its ``[hidpos]`` table.
    """
    stem = "honeywell-xenon-1900g"
    text = resources.files(PACKAGE).joinpath(f"{stem}.toml").read_text(encoding="utf-8")
    text, count = re.subn(
        r'^layout = "honeywell".*$',
        lambda m: m.group(0) + "\n" + documented_honeywell_beep(),
        text,
        flags=re.MULTILINE,
    )
    assert count == 1
    site.mkdir()
    (site / f"{stem}.toml").write_text(text, encoding="utf-8")
    local = load_profile(stem, [site])
    assert local.source == str(site / f"{stem}.toml")
    return local


async def test_a_local_profile_with_the_documented_honeywell_beep_sends_it_after_a_good_read(
    node: PtyScanner, run_source: RunSource, tmp_path: Path
) -> None:
    local = local_profile_with_documented_beep(tmp_path / "profiles")
    assert local.hidpos_feedback == HidPosFeedback(good_read=b"\xfd\x03\x16\x07\r")
    source = source_for(node.link, profile=local)
    assert source.feedback.good_read == b"\xfd\x03\x16\x07\r"  # [SYN][BEL][CR] in report 0xFD
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    node.write(reports("6901234567892")[0])  # bad read: no report known, nothing sent
    node.write(reports(cn20(22))[0])
    await eventually(lambda: source.scans == 2 and len(node.received) >= 5)
    await eventually(lambda: source.last_outcome is not None and source.last_outcome.accepted)
    assert bytes(node.received) == b"\xfd\x03\x16\x07\r"
    assert await agent.stop() == [cn20(22)]


async def test_a_node_the_agent_may_not_write_is_read_without_feedback(
    node: PtyScanner, run_source: RunSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = open_device_fd
    modes: list[bool] = []

    def read_only(path: str, *, exclusive: bool = True, writable: bool = False) -> int:
        modes.append(writable)
        if writable:
            raise DeviceUnavailable("Failed to open: denied", device=path) from PermissionError(
                13, "Permission denied"
            )
        return real_open(path, exclusive=exclusive)

    monkeypatch.setattr(hidraw, "open_device_fd", read_only)
    source = source_for(node.link, profile=FEEDBACK)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    node.write(reports(cn20(23))[0])
    await eventually(lambda: source.last_outcome is not None)
    assert modes == [True, False]
    assert not source.can_write
    assert bytes(node.received) == b""  # nothing written to a read-only node
    assert await agent.stop() == [cn20(23)]


async def test_a_site_profile_layout_is_read_from_the_node(
    tmp_path: Path, node: PtyScanner, run_source: RunSource
) -> None:
    (tmp_path / "acme-s9.toml").write_text(ACME_PROFILE, encoding="utf-8")
    source = source_for(node.link, load_profile("acme-s9", [tmp_path]))
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    node.write(b"".join(ACME_REPORTS), dribble=True)
    await eventually(lambda: source.scans == 1)
    assert await agent.stop() == ["(01)06901234567892(17)280500(10)LOT1(21)SERIAL01"]
    assert source.errors == 0
