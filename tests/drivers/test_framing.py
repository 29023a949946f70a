"""LineFramer: terminators, caps, and properties that hold for any byte stream."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.framing import Frame, FrameError, LineFramer


def frames(events: list[Frame | FrameError]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, Frame)]


def test_cr_lf_and_crlf_all_end_a_frame_at_once() -> None:
    f = LineFramer("crlf")
    assert frames(f.feed(b"a\r")) == [b"a"]  # a CR-only scanner's code is complete at the CR
    assert frames(f.feed(b"\nb\nc\r\nd")) == [b"b", b"c"]
    assert frames(f.flush()) == [b"d"]


def test_tab_terminator_splits_on_tab_only() -> None:
    f = LineFramer("tab")
    assert frames(f.feed(b"a\r\nb\tc")) == [b"a\r\nb"]
    assert frames(f.feed(b"\t")) == [b"c"]


def test_exact_multibyte_terminator_split_across_reads() -> None:
    f = LineFramer(b"\r\n", any_eol=False)
    assert frames(f.feed(b"a\r")) == []
    assert frames(f.feed(b"\nb\r\n")) == [b"a", b"b"]


def test_over_long_frame_is_discarded_with_an_error_and_the_next_frame_survives() -> None:
    f = LineFramer(max_frame=10)
    events = f.feed(b"x" * 25) + f.feed(b"yy\nok\n")
    assert frames(events) == [b"ok"]
    errors = [e for e in events if isinstance(e, FrameError)]
    assert errors
    assert sum(e.discarded for e in errors) == 27
    assert f.discarded_bytes == 27
    assert f.buffered == 0


def test_over_long_frame_keeps_a_split_multibyte_terminator() -> None:
    f = LineFramer(b"\r\n", any_eol=False, max_frame=10)
    events = f.feed(b"x" * 20 + b"\r") + f.feed(b"\nok\r\n")
    assert frames(events) == [b"ok"]


def test_bad_arguments_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="terminator"):
        LineFramer("nul")
    with pytest.raises(ValueError, match="empty terminator"):
        LineFramer(b"")
    with pytest.raises(ValueError, match="max_frame"):
        LineFramer(max_frame=0)


TERMINATORS = st.sampled_from(["lf", "cr", "crlf", "tab", b"\r\n", b"\x03"])


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=300), max_size=40), term=TERMINATORS)
def test_any_stream_never_raises_and_never_buffers_past_the_cap(
    chunks: list[bytes], term: object
) -> None:
    f = LineFramer(term, max_frame=64, any_eol=None if isinstance(term, str) else False)  # type: ignore[arg-type]
    for chunk in chunks:
        for event in f.feed(chunk):
            if isinstance(event, Frame):
                assert 0 < len(event.data) <= 64
        assert f.buffered <= 64 + 2
    f.flush()
    assert f.buffered == 0


PAYLOAD = st.binary(min_size=1, max_size=50).filter(lambda b: b"\r" not in b and b"\n" not in b)


@settings(max_examples=300)
@given(
    payloads=st.lists(PAYLOAD, min_size=1, max_size=20),
    cuts=st.lists(st.integers(0, 2000), max_size=10),
)
def test_frames_split_at_any_points_decode_the_same(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(p + b"\r\n" for p in payloads)
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    f = LineFramer("crlf")
    got = [fr for piece in pieces for fr in frames(f.feed(piece))]
    assert got == payloads
