"""Each sink's admission rule: asked by the intake before the commit, applied again when sending.

The promise is one rule in one place: what the intake NAKs at the scanner is
exactly what the sink would refuse when sending, with the same reason, so an
ACK means the platform will take the scan (issue 15, section 2).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scanner_agent.sync as sync
from scanner_agent.bills import Bill, BillBook, bill_types
from scanner_agent.codes import ScanResult, parse_scan
from scanner_agent.intake import GroupCommitter, ScanIntake
from scanner_agent.kernel import RawScan, ScanOutcome, Verdict
from scanner_agent.outbox import NewScan, Outbox, OutboxThread, lease_bill, uuid7
from scanner_agent.sinks.alihealth import (
    AliHealthClient,
    AliHealthConfig,
    AliHealthSink,
    alihealth_admission,
    is_trace_code,
)
from scanner_agent.sinks.epcis import EPC_SCHEMES, EPCIS_ADMISSION, EpcisConfig, epc_uri
from scanner_agent.sinks.trace_api import TRACE_API_ADMISSION
from scanner_agent.sync import Admission, Gate
from scanner_agent.traceserver._protocol import SCHEMES as SERVICE_SCHEMES

CN20 = "81234567890123456789"
GS1 = "(01)06901234567892(17)280500(10)4711(21)ABC123"
MA = "MA.156.M0.100001.0001"
SAMPLES = {"cn20": CN20, "gs1": GS1, "ma": MA}
"""A valid code of every scheme the agent parses."""


def test_every_public_name_of_sync_is_there() -> None:
    for name in sync.__all__:
        assert getattr(sync, name) is not None, name
    assert {"Admission", "BillTerms", "Gate"} <= set(sync.__all__)


def test_the_samples_cover_every_scheme_the_agent_parses() -> None:
    assert {str(parse_scan(code).scheme) for code in SAMPLES.values()} == set(SAMPLES)


def test_trace_api_takes_what_the_reference_service_takes_on_any_bill() -> None:
    # Both ends of Trace API v1: the sink's declaration and the service's own rule.
    assert TRACE_API_ADMISSION.schemes == SERVICE_SCHEMES
    gate = TRACE_API_ADMISSION.gate("dock-1-ship", None)
    assert gate.takes == SERVICE_SCHEMES
    assert gate.bill_problem is None
    assert gate is TRACE_API_ADMISSION.gate("SO-1", None)  # decided once, not per call


def test_epcis_takes_exactly_the_codes_it_can_name() -> None:
    assert EPCIS_ADMISSION.schemes == EPC_SCHEMES
    cfg = EpcisConfig("urn:x:rp", "urn:x:loc")
    for scheme, code in SAMPLES.items():
        if scheme in EPC_SCHEMES:
            assert epc_uri(code, scheme, cfg)
            assert EPCIS_ADMISSION.scheme_problem(scheme) is None
        else:
            with pytest.raises(ValueError, match="unknown code scheme"):
                epc_uri(code, scheme, cfg)
            assert EPCIS_ADMISSION.scheme_problem(scheme) == (
                "EPCIS takes only GS1 and 20-digit trace codes"
            )


@given(st.text(alphabet="80123456789８٣ ", max_size=22))
def test_the_alihealth_scheme_is_exactly_the_platforms_trace_code(text: str) -> None:
    # 码上放心's rule ("20 digits starting with 8") and the parser's cn20 scheme agree,
    # non-ASCII digits included, so declaring schemes={"cn20"} is the platform's rule.
    for frame in (text, "8" + text):
        result = parse_scan(frame)
        if result.valid and result.code is not None:
            assert (str(result.scheme) == "cn20") == is_trace_code(result.code), frame


# -- 码上放心: the scanner's answer is the sink's answer -------------------------------

BILL_TYPES = sorted(bill_types())


@st.composite
def bill_cases(draw: st.DrawFn) -> dict[str, Any]:
    """A bill as an operator might open it (or not) and the scans put on it."""
    return {
        "typed": draw(st.booleans()),
        "type": draw(st.sampled_from(BILL_TYPES)),
        "from_party": draw(st.sampled_from(["", "ent-supplier"])),
        "to_party": draw(st.sampled_from(["", "ent-customer"])),
        "ent_id": draw(st.sampled_from(["", "ent-self"])),
        "schemes": draw(st.lists(st.sampled_from(sorted(SAMPLES)), min_size=1, max_size=6)),
    }


def _new_scan(i: int, scheme: str, bill: str) -> NewScan:
    """The ``i``-th scan of ``scheme`` (codes differ, so none is a duplicate)."""
    code = {"cn20": f"8{i:019d}", "gs1": f"{GS1}{i}", "ma": f"{MA}{i}"}[scheme]
    return NewScan(
        uuid7(), code, scheme, code, None, "ship", bill, "dock", "t", "2026-11-23T10:00:00+08:00"
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bill_cases())
def test_the_intake_and_the_alihealth_sink_refuse_the_same_scans_for_the_same_reason(
    case: dict[str, Any],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox.open(Path(tmp) / "outbox.db")
        try:
            book = BillBook(outbox)
            number = "SO-1" if case["typed"] else "dock-ship"  # a default bill is never opened
            opened: Bill | None = None
            if case["typed"]:
                opened = book.open(
                    number,
                    case["type"],
                    device_id="dock",
                    from_party=case["from_party"],
                    to_party=case["to_party"],
                )
            cfg = AliHealthConfig(app_key="k", secret="s", ref_user_id="r")
            thread: Any = SimpleNamespace(outbox=outbox)  # encode runs on the outbox thread
            sink = AliHealthSink(thread, AliHealthClient(cfg), ent_id=case["ent_id"])
            # At the scanner: the gate of the bill as the desk holds it while open.
            gate = sink.admission.gate(number, opened)
            scans = [_new_scan(i, s, number) for i, s in enumerate(case["schemes"])]
            at_scanner = {
                s.event_id: (None if s.scheme in gate.takes else gate.reason(s.scheme))
                for s in scans
            }
            # When sending: the same scans queued anyway (as before the rule applied).
            outbox.enqueue_many(scans)
            if case["typed"]:
                book.close(number)
            batch = lease_bill(outbox, lease_s=60, other_limit=1000)
            assert batch is not None
            payload = sink.encode(batch)
            sent = {eid for _upload, ids in payload.uploads for eid in ids}
            at_send = {s.event_id: payload.refused.get(s.event_id) for s in scans}
            assert at_send == at_scanner
            assert sent == {eid for eid, why in at_scanner.items() if why is None}
        finally:
            outbox.close()


def test_the_alihealth_rule_names_what_is_missing() -> None:
    rule = alihealth_admission("ent-self")
    assert rule.scheme_problem("gs1") == "码上放心 takes only 20-digit trace codes"
    assert rule.scheme_problem("cn20") is None
    no_bill = rule.gate("dock-ship", None)
    assert no_bill.takes == frozenset()
    assert no_bill.reason("cn20").startswith("no bill open: open a 码上放心 bill first")
    assert no_bill.reason("gs1") == "码上放心 takes only 20-digit trace codes"  # scheme first
    inbound = SimpleNamespace(number="PO-1", type=102, from_party="", to_party="")
    assert rule.bill_problem("PO-1", inbound) == (
        "bill lacks a party: PO-1 has no from party (the partner's 码上放心 ent_id); "
        "码上放心 needs from and to (set alihealth.ent_id for this enterprise's side)"
    )
    assert rule.parties_of(inbound) == ("", "ent-self")
    outbound = SimpleNamespace(number="SO-1", type=201, from_party="", to_party="ent-c")
    assert rule.gate("SO-1", outbound).takes == frozenset({"cn20"})
    assert rule.parties_of(outbound) == ("ent-self", "ent-c")
    strange = SimpleNamespace(number="X-1", type=901, from_party="a", to_party="b")
    assert rule.bill_problem("X-1", strange) == (
        "bill type not taken: X-1 has type 901; 码上放心 takes 1xx, 2xx, 3xx"
    )


# -- the intake asks before the commit ---------------------------------------------


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[tuple[ScanIntake, Outbox, list[Any]]]:
    outbox = Outbox.open(tmp_path / "outbox.db")
    thread = OutboxThread(outbox)
    committer = GroupCommitter(thread)
    task = asyncio.create_task(committer.run())
    seen: list[tuple[RawScan, ScanResult, ScanOutcome]] = []
    rule = Admission(
        platform="Testplatz",
        schemes=frozenset({"cn20"}),
        takes="cn20 codes",
        bill_required=True,
    )
    opened = SimpleNamespace(number="SO-1", type=201, from_party="", to_party="")
    asked: list[str] = []

    def admit(bill: str) -> Gate:
        asked.append(bill)
        return rule.gate(bill, opened if bill == "SO-1" else None)

    scan_intake = ScanIntake(
        committer,
        device_id="dock",
        bill_for=lambda action, bill: bill or f"dock-{action}",
        default_action="ship",
        listeners=[lambda *args: seen.append(args)],
        admit=admit,
    )
    yield scan_intake, outbox, [seen, asked]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    thread.shutdown()
    outbox.close()


async def test_a_scan_the_sink_refuses_is_naked_recorded_and_never_committed(
    intake: tuple[ScanIntake, Outbox, list[Any]],
) -> None:
    scan_intake, outbox, (seen, asked) = intake
    frames = [RawScan(c.encode(), "tcp:1") for c in (CN20, GS1, "not a code")]
    on_bill = await scan_intake.submit_many(frames, bill="SO-1")
    assert [o.verdict for o in on_bill] == [Verdict.ACCEPTED, Verdict.INVALID, Verdict.INVALID]
    assert on_bill[1].reason == "Testplatz takes only cn20 codes"
    assert on_bill[1].code == GS1
    stray = await scan_intake.submit_many([RawScan(b"81234567890123456788", "tcp:1")])
    assert stray[0].verdict is Verdict.INVALID
    assert (stray[0].reason or "").startswith("no bill open: open a Testplatz bill first")
    assert asked == ["SO-1", "dock-ship"]  # once per submission, not per scan
    assert [r.code for r in outbox.rows(limit=10)] == [CN20]
    refused = {r.code: (r.reason, r.verdict) for r in outbox.rejects()}
    assert refused[GS1] == ("Testplatz takes only cn20 codes", "invalid")
    assert refused["81234567890123456788"][0].startswith("no bill open")
    # Counted and shown like any refusal (status, TUI stream and metrics read these).
    assert scan_intake.stats.refused["Testplatz takes only cn20 codes"] == 1
    assert scan_intake.stats.refused["no bill open"] == 1
    assert [o.verdict for _scan, _result, o in seen].count(Verdict.INVALID) == 3
