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


def test_an_over_long_frame_is_reported_once_however_many_reads_it_spans() -> None:
    f = LineFramer(max_frame=100)
    events = [e for _ in range(17) for e in f.feed(b"7" * 65536)]
    assert events == []  # nothing yet: the frame has not ended
    events = f.feed(b"77\nok\n")
    assert events[0] == FrameError(
        "frame too long (1114114 bytes, over 100)", 17 * 65536 + 2, head=b"7" * 100
    )
    assert frames(events) == [b"ok"]
    assert f.buffered == 0


def test_an_over_long_frame_at_the_end_of_the_stream_is_reported_by_flush() -> None:
    f = LineFramer(max_frame=10)
    assert f.feed(b"a" * 30) == []
    assert f.flush() == [FrameError("frame too long (30 bytes, over 10)", 30, head=b"a" * 10)]


def test_keep_empty_returns_empty_frames_but_a_crlf_split_across_reads_is_one_end() -> None:
    f = LineFramer("lf", keep_empty=True)
    assert frames(f.feed(b"a\r")) == [b"a"]
    assert frames(f.feed(b"\n")) == []  # the LF of that CRLF
    assert frames(f.feed(b"\n\r\n\rb\r\n")) == [b"", b"", b"", b"b"]


def test_abandon_gives_the_frame_in_progress_and_starts_afresh() -> None:
    f = LineFramer(max_frame=4)
    assert f.abandon() is None
    f.feed(b"ab")
    assert f.in_frame
    assert f.abandon() == b"ab"
    f.feed(b"toolong")
    assert f.abandon() == b"tool"
    assert not f.in_frame
    assert frames(f.feed(b"ok\n")) == [b"ok"]


KEEP_TERMINATORS = st.sampled_from(["lf", "crlf", "tab", b"\x03", b"\r\n"])


@settings(max_examples=300)
@given(
    payloads=st.lists(st.binary(max_size=40), min_size=1, max_size=20),
    cuts=st.lists(st.integers(0, 2000), max_size=10),
    term=KEEP_TERMINATORS,
)
def test_with_keep_empty_every_frame_gives_exactly_one_event(
    payloads: list[bytes], cuts: list[int], term: object
) -> None:
    """One event (a frame or an error) per terminated frame, however the stream is cut."""
    f = LineFramer(
        term, max_frame=16, keep_empty=True, any_eol=None if isinstance(term, str) else False
    )  # type: ignore[arg-type]
    sep = b"\n" if f.any_eol else f.terminator
    bad = (b"\r", b"\n") if f.any_eol else (sep,)
    payloads = [p for p in payloads if not any(b in p for b in bad) and not p.endswith(sep[:1])]
    stream = b"".join(p + (b"\r\n" if term == "crlf" else sep) for p in payloads)
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    events = [e for piece in pieces for e in f.feed(piece)] + f.flush()
    assert len(events) == len(payloads)
    for p, e in zip(payloads, events, strict=True):
        if len(p) > 16:
            assert isinstance(e, FrameError)
            assert (e.discarded, e.head) == (len(p), p[:16])
        else:
            assert e == Frame(p)
