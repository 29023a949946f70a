"""One GS1 rule at both ends: what the agent ACKs as gs1 its reference service takes, and what the
service refuses the agent refuses at intake, with the same reason (issue 15 §2, first bullet).

Checked three ways: the two functions on generated data (valid trace codes
in every form; bracketed text with every kind of defect), and a real daemon
scanning over TCP into a real service over HTTP, where every ACKed GS1 scan
must be delivered and accepted, never dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivers.tcp_protocol import parse_reply
from scanner_agent.codes import parse_scan
from scanner_agent.codes._gs1 import NOT_CANONICAL
from scanner_agent.codes._gs1_syntax import AI_TABLE
from scanner_agent.outbox import RowState
from scanner_agent.traceserver import TraceServerThread
from scanner_agent.traceserver._protocol import code_problem
from tests.codes.gs1_strategies import (
    GS,
    GS1_AIMS,
    bracketed,
    element_string,
    trace_elements,
    valid_value,
)
from tests.support.agent import TOKEN

GTIN = "09506000134352"
SOME_AIS = ["01", "21", "10", "17", "11", "00", "91", "240", "422", "7003", "8010", "8200", "3103"]

# Printable text without the terminators (CR, LF, Tab) a scanner appends, which the agent
# takes off a scan and the service, reading a stored code, does not.
VALUE_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\t"
    ),
    max_size=24,
) | st.text(alphabet="0123456789ABC()\\ %", max_size=24)


@st.composite
def defective_bracketed(draw: st.DrawFn) -> str:
    """Bracketed text near a good code: wrong values, unknown AIs, junk, spaces, gaps."""
    elements: list[tuple[str, str]] = draw(
        st.lists(
            st.sampled_from(SOME_AIS).flatmap(
                lambda ai: st.tuples(st.just(ai), valid_value(ai) | VALUE_TEXT)
            ),
            min_size=1,
            max_size=6,
        )
    )
    text = bracketed(elements)
    noise = draw(
        st.sampled_from(["", "", "(1A)12345", "()1", "(15", "(BADAI)DATA", " ", "(11)", "\x1d"])
    )
    at = draw(st.integers(0, len(text)))
    return draw(st.sampled_from([text + noise, text[:at] + noise + text[at:], " " + text]))


@settings(max_examples=300)
@given(elements=trace_elements(), aim=st.sampled_from(GS1_AIMS))
def test_every_gs1_scan_the_agent_accepts_the_service_takes(
    elements: list[tuple[str, str]], aim: str
) -> None:
    for form in (aim + element_string(elements), bracketed(elements)):
        result = parse_scan(form)
        if result.valid:
            assert result.code is not None
            assert code_problem("gs1", result.code) is None, (form, result.code)


@settings(max_examples=500)
@given(text=defective_bracketed())
@example(f"(00)106141412345678908(01){GTIN}(21)ABC")  # the service dead-lettered this
@example(f"(01){GTIN}(17)(21)ABC")
@example(f"(01){GTIN}(21)AB C")
@example(f"(01){GTIN}(21)SN1(91)X")
@example(f"(01){GTIN}(21)SN1\\(91)X")
@example(f"(01){GTIN}(21)ABC(91)" + "A" * 5000)  # longer than any scan the agent reads
@example(f" (01){GTIN}(21)ABC(91)" + "A" * 4660)  # longer than bracketed text may be
def test_the_service_refuses_gs1_exactly_when_and_why_the_agent_does(text: str) -> None:
    service = code_problem("gs1", text)
    agent = parse_scan(text)
    if agent.valid:
        assert agent.code is not None
        assert code_problem("gs1", agent.code) is None
        # The agent writes any order canonically; the service holds codes as the agent stores them.
        assert service is None or service == NOT_CANONICAL + agent.code
    else:
        assert service == agent.reason


@settings(max_examples=300)
@given(
    elements=st.lists(
        st.sampled_from(sorted(AI_TABLE)).flatmap(
            lambda ai: st.tuples(
                st.just(ai),
                valid_value(ai).flatmap(
                    lambda v: st.sampled_from([v, v[:-1] + "0", v + "9", v.replace("0", "O")])
                ),
            )
        ),
        min_size=1,
        max_size=5,
    ),
    aim=st.sampled_from(GS1_AIMS),
)
def test_the_same_data_gets_the_same_reason_in_element_string_form(
    elements: list[tuple[str, str]], aim: str
) -> None:
    # A predefined-length value of the wrong length shifts every AI after it in an element
    # string (that form has no brackets); such data is compared in bracketed form above.
    for ai, value in elements:
        if AI_TABLE[ai].fixed and len(value) != AI_TABLE[ai].max_length:
            return
        if GS in value or not value:
            return
    scanned = element_string(elements)
    if scanned.isdigit() and len(scanned) == 20 and scanned[0] == "8":
        return  # a cn20 code, even behind a GS1 identifier
    agent = parse_scan(aim + scanned)
    service = code_problem("gs1", bracketed(elements))
    if agent.valid:
        assert service is None or service.startswith(NOT_CANONICAL)
    else:
        assert service == agent.reason


async def test_a_real_agent_acks_only_gs1_its_service_accepts(
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
) -> None:
    agent = await start_agent(make_config(trace_server.url))
    good = [
        f"]d201{GTIN}17250630104711{GS}21A1",
        f"]J101{GTIN}21A2",
        f"]C100106141412345678908{GS}01{GTIN}21A3",  # (00) first: was dead-lettered
        f"]Q301{GTIN}21SN1(91)X",
        f"]Q301{GTIN}21SN1{GS}91X",
        f"(21)A4(01){GTIN}",
        f"https://id.gs1.org/01/{GTIN}/21/A%285?17=250600",
        f"01{GTIN}21A6",
    ]
    bad = [
        f"(01){GTIN}(17)(21)B1",
        f"(01){GTIN}(21)B2(1A)12345",
        f"(01){GTIN}(21)B 3",
        f"https://id.gs1.org/01/{GTIN}/21/B4?17=",
        f"]d201{GTIN}21B5{GS}8010AB",
    ]
    replies = [parse_reply(f"{line}\n".encode()) for line in await agent.scan(*good, *bad)]
    codes = [parse_scan(scan).code for scan in good]
    assert [(r.accepted, r.detail) for r in replies[: len(good)]] == [(True, c) for c in codes]
    for scan, reply in zip(bad, replies[len(good) :], strict=True):
        assert (reply.accepted, reply.kind, reply.detail) == (
            False,
            "invalid",
            parse_scan(scan).reason,
        )
    await agent.drained()
    stats = await agent.daemon.queue_stats()
    assert stats.counts.get(RowState.REJECTED, 0) == 0
    assert stats.counts.get(RowState.DELIVERED, 0) == len(good)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=trace_server.url, headers=headers) as client:
        for code in codes:
            assert code is not None
            held = (await client.get("/v1/codes/" + quote(code, safe=""))).json()
            assert [e["code"] for e in held["events"]] == [code]
