"""The control protocol's request decoder, fuzzed: any bytes give a request or a ValueError."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scanner_agent.control import MAX_DEPTH, decode, encode, too_deep
from scanner_agent.control._protocol import _STRING

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=40,
)


def depth(value: Any) -> int:
    """How deep arrays and objects nest in a decoded value (the reference)."""
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def nested(shape: list[bool], leaf: str) -> Any:
    """Arrays (True) and objects (False) nested in the order of ``shape``, around ``leaf``."""
    value: Any = leaf
    for is_array in reversed(shape):
        value = [value] if is_array else {"k": value}
    return value


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=2048)
    | st.text(alphabet='[]{}",:\\0123456789.eE+-aeltrunf \n', max_size=2048).map(str.encode)
)
@example(b"[" * 100_000)
@example(b'{"a":' * 60_000)
@example(b'{"s": "\\"' + b"[" * 5000 + b'"}')
@example(b"\xff\xfe")
@example(b"1" * 5000)
def test_any_bytes_decode_to_an_object_or_a_value_error(data: bytes) -> None:
    try:
        request = decode(data)
    except ValueError:
        return
    assert isinstance(request, dict)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=8), values, max_size=5))
def test_every_object_round_trips_or_is_refused_for_its_depth(request: dict[str, Any]) -> None:
    line = encode(request)
    if depth(request) > MAX_DEPTH:
        with pytest.raises(ValueError, match="nested deeper"):
            decode(line)
    else:
        assert decode(line) == json.loads(line)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=3 * MAX_DEPTH),
    st.text(alphabet='[]{}"\\ab', max_size=20),
)
def test_nesting_is_measured_exactly_whatever_the_strings_hold(
    shape: list[bool], leaf: str
) -> None:
    line = encode({"args": nested(shape, leaf)})
    assert too_deep(line) == (len(shape) + 1 > MAX_DEPTH)
    if len(shape) + 1 > MAX_DEPTH:
        with pytest.raises(ValueError, match=f"nested deeper than {MAX_DEPTH}"):
            decode(line)
    else:
        assert decode(line)["args"] == nested(shape, leaf)


@pytest.mark.parametrize("count", [MAX_DEPTH - 2, MAX_DEPTH - 1, 100_000])
def test_the_review_s_hundred_thousand_deep_request_is_refused_without_recursion(
    count: int,
) -> None:
    line = b'{"cmd": "status", "args": {"x": ' + b"[" * count + b"]" * count + b"}}"
    if count + 2 > MAX_DEPTH:
        with pytest.raises(ValueError, match="nested deeper"):
            decode(line)
    else:
        assert decode(line)["cmd"] == "status"


# A string that never ends, made of escaped quotes, behind enough brackets to need the
# nesting check: each quote in it starts a string token that runs to the end of the line.
# A scanner that gives up on an unterminated string and tries again at the next quote
# does quadratic work (16 KiB took seconds, 1 MiB hours), and Python's regex engine holds
# the GIL all along, so not even the control lane keeps the event loop running.
UNTERMINATED = [
    b'\\"',  # \" \" \" ...
    b'"\\',  # " \ " \ ...
    b'\\\\"',  # \\" : an escaped backslash, then a quote
    b'a"',
]


@pytest.mark.parametrize(
    "unit", UNTERMINATED, ids=["esc-quote", "quote-esc", "esc-esc-quote", "a-quote"]
)
def test_the_nesting_check_of_a_full_size_line_ends_whatever_its_strings(unit: bytes) -> None:
    """A 1 MiB line (control.max_line_bytes) of any string shape is checked in linear time.

    Run in a subprocess with a generous deadline: a quadratic check would hold the GIL
    for hours, so it cannot run in the test process; the deadline is a hang detector
    (minutes, for work that takes well under a second), not a measure of speed.
    """
    script = (
        "import sys\n"
        "from scanner_agent.control import decode, too_deep\n"
        f"line = b'[' * 40 + b'\"' + {unit!r} * ((1 << 20) // {len(unit)})\n"
        "too_deep(line)\n"
        "try:\n"
        "    decode(line)\n"
        "except ValueError:\n"
        "    pass\n"
        "print('done')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip() == "done", done.stderr


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.integers(min_value=0, max_value=511))
def test_a_string_token_starting_at_any_quote_is_matched_to_its_end_or_the_line_s(
    data: bytes, at: int
) -> None:
    """The check never gives up on a string and rescans its bytes: linear by construction.

    From any quote the string pattern matches (to the closing quote, or to the end of the
    line when there is none), so the scan consumes each byte once.
    """
    at = min(at, len(data))
    line = data[:at] + b'"' + data[at:]
    match = _STRING.match(line, at)
    assert match is not None
    end = match.end()
    assert end == len(line) or line[end - 1 : end] == b'"'


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["\\ud800", "\\udfff", "\\ud83d\\ude00", "\\u00e9", "a", "\\\\", "\\u0000"]
        ),
        max_size=6,
    ).map("".join),
    st.sampled_from(["id", "key", "value"]),
)
def test_a_request_that_decodes_can_be_answered(text: str, where: str) -> None:
    """Whatever string escapes a request holds, a request that decodes encodes again.

    A lone surrogate escape decodes to a str that UTF-8 cannot encode: the reply (which
    echoes the id) and every command that stores or looks up the string would fail.
    """
    line = {
        "id": f'{{"id": "{text}", "cmd": "hello"}}',
        "key": f'{{"id": 1, "cmd": "hello", "args": {{"{text}": 1}}}}',
        "value": f'{{"id": 1, "cmd": "hello", "args": {{"code": "{text}"}}}}',
    }[where].encode()
    decoded = json.loads(f'"{text}"')
    if any(0xD800 <= ord(c) <= 0xDFFF for c in decoded):  # a half left over: no text
        with pytest.raises(ValueError, match="surrogate"):
            decode(line)
    else:
        encode(decode(line))
