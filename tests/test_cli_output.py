"""The CLI's output rules (``scanner_agent.cli.output``) and times (``scanner_agent.times``).

Properties over arbitrary values: a cell is never a Python ``repr``; a table's
columns line up on a terminal even with Chinese text; every time survives
ISO 8601 and back; people always see the zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from scanner_agent.cli.output import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_USAGE,
    cell,
    cell_width,
    exit_code,
    plural,
    table,
)
from scanner_agent.kernel import (
    ConfigError,
    OutboxError,
    ScannerAgentError,
    SyncError,
    UsageError,
)
from scanner_agent.outbox import reason_label
from scanner_agent.times import age, clock, iso, local, parse_time, zone_name

# Text with no brackets or quotes of its own, so any "{'" or "['" would be a repr.
TEXT = st.text(
    alphabet=st.characters(blacklist_characters="{}[]'\"", blacklist_categories=("Cs",)),
    max_size=12,
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(TEXT, inner, max_size=4)
        | st.tuples(inner, inner)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_a_cell_is_never_a_python_repr(value: Any) -> None:
    text = cell(value)
    assert "{'" not in text
    assert "['" not in text
    assert "('" not in text
    assert "None" not in text or (isinstance(value, str) and "None" in value) or _has_text(value)
    assert text != ""


def _has_text(value: Any) -> bool:
    if isinstance(value, str):
        return "None" in value
    if isinstance(value, dict):
        return any(_has_text(k) or _has_text(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_text(v) for v in value)
    return False


def test_cells_of_common_values() -> None:
    assert cell(None) == "-"
    assert cell("") == "-"
    assert cell(True) == "yes"
    assert cell({"duplicate scan": 2, "not a trace code": 1}) == (
        "duplicate scan 2, not a trace code 1"
    )
    assert cell(["hid-pos", "keyboard"]) == "hid-pos, keyboard"
    assert cell([]) == "-"
    assert cell(b"\x16T\r") == "16 54 0d"


CJK = st.text(alphabet="阿莫西林胶囊销售出库华东仓abcXYZ0129 -", max_size=10).map(str.strip)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=5).flatmap(
        lambda n: st.tuples(
            st.lists(CJK.filter(bool), min_size=n, max_size=n),
            st.lists(st.lists(CJK | st.integers(0, 10**6), min_size=n, max_size=n), max_size=6),
        )
    )
)
def test_table_columns_line_up_on_a_terminal(
    headers_rows: tuple[list[str], list[list[Any]]],
) -> None:
    headers, rows = headers_rows
    lines = table(headers, rows)
    assert len(lines) == len(rows) + 1
    for line in lines:
        assert line == line.rstrip()
    # Each column starts at the same terminal column on every line: the width of the
    # cells before it (padded to the widest) plus two spaces each.
    cells = [[h.upper() for h in headers], *[[cell(v) for v in r] for r in rows]]
    widths = [max(cell_width(row[i]) for row in cells) for i in range(len(headers))]
    for line, row in zip(lines, cells, strict=True):
        position = 0
        for i, text in enumerate(row):
            numeric = (
                i < len(headers)
                and rows
                and all(isinstance(r[i], int) and not isinstance(r[i], bool) for r in rows)
            )
            start = position + (widths[i] - cell_width(text) if numeric else 0)
            assert _width_until(line, start, text), (line, i, text)
            position += widths[i] + 2


def _width_until(line: str, start: int, text: str) -> bool:
    """``text`` appears in ``line`` starting at terminal column ``start``."""
    column = 0
    for index, ch in enumerate(line):
        if column == start:
            return line[index:].startswith(text)
        column += cell_width(ch)
    return column == start and text == ""


def test_plural_agrees_with_the_number() -> None:
    assert plural(0, "row") == "0 rows"
    assert plural(1, "row") == "1 row"
    assert plural(2, "row") == "2 rows"
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(3, "entry", "entries") == "3 entries"


def test_errors_map_to_the_documented_exit_codes() -> None:
    assert exit_code(ConfigError("x")) == EXIT_USAGE == 2
    assert exit_code(UsageError("x")) == EXIT_USAGE
    for exc in (ScannerAgentError("x"), OutboxError("x"), SyncError("x")):
        assert exit_code(exc) == EXIT_FAILED == 1
    assert sorted(EXIT_CODES) == [0, 1, 2, 3, 130]


# -- times -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=4_102_444_800))  # 1970 .. 2100
def test_iso_is_utc_with_an_offset_and_reads_back(ts: float) -> None:
    text = iso(ts)
    assert text is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", text)
    back = parse_time(text)
    assert back is not None
    assert abs(back.timestamp() - ts) < 0.001


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2099, 1, 1),
        timezones=st.sampled_from(
            [
                UTC,
                ZoneInfo("Asia/Shanghai"),
                ZoneInfo("Europe/Berlin"),
                timezone(timedelta(hours=-3)),
            ]
        ),
    ),
    st.sampled_from([ZoneInfo("Asia/Shanghai"), UTC, timezone(timedelta(hours=5, minutes=30))]),
)
# 02:00 on 1987-04-12 never happened in Shanghai (clocks went to 03:00 CDT): the same instant
# shows as 03:00 CDT.  Subtracting two datetimes that share a tzinfo compares wall times, so the
# check below compares with the moment converted to the zone, never by subtraction.
@example(datetime(1987, 4, 12, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai")), ZoneInfo("Asia/Shanghai"))
def test_local_time_shows_the_zone_and_the_same_moment(moment: datetime, tz: Any) -> None:
    text = local(iso(moment), tz)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (\S+)", text)
    assert m, text
    assert m[2] in ("CST", "CDT", "UTC", "+05:30"), text  # China had summer time 1986-91
    instant = parse_time(iso(moment))  # iso keeps milliseconds
    assert instant is not None
    there = instant.astimezone(tz)  # the same instant, on the zone's clock
    assert m[1] == there.strftime("%Y-%m-%d %H:%M:%S"), (text, there)
    if isinstance(tz, ZoneInfo):
        assert m[2] == there.tzname(), (text, there)
    assert clock(iso(moment), tz) == m[1][-8:]


def test_local_uses_the_box_zone(shanghai: None) -> None:
    assert local("2026-11-23T08:30:01.000+00:00") == "2026-11-23 16:30:01 CST"
    assert local(1795422601.0) == "2026-11-23 16:30:01 CST"
    assert local(None) == "-"
    assert local("not a time") == "not a time"
    assert zone_name(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=8)))) == "+08:00"


def test_age_reads_like_an_operator_would_say_it() -> None:
    assert age(45) == "45s ago"
    assert age(725) == "12m 5s ago"
    assert age(3 * 3600 + 720) == "3h 12m ago"
    assert age(2 * 86400 + 4 * 3600) == "2d 4h ago"
    assert age(-30) == "30s in the future (clock ahead?)"


# -- reason labels -------------------------------------------------------------------


def test_a_refusal_has_one_label_whatever_its_detail() -> None:
    assert reason_label("not a trace code: 7-digit number") == "not a trace code"
    assert reason_label("not a trace code: 1-character text") == "not a trace code"
    assert reason_label("drug trace code must be 20 digits, got 19") == (
        "drug trace code must be 20 digits"
    )
    assert reason_label("malformed gs1 code: ai (01): wrong check digit") == "malformed gs1 code"
    assert reason_label("ma code too long (4000 characters)") == "ma code too long"
    assert reason_label("码上放心 takes only 20-digit trace codes") == (
        "码上放心 takes only 20-digit trace codes"
    )
    assert reason_label("duplicate scan") == "duplicate scan"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_a_reason_label_is_short_and_stable(reason: str) -> None:
    label = reason_label(reason)
    assert len(label) <= 80
    assert reason_label(label) == label or ":" in label or " (" in label
