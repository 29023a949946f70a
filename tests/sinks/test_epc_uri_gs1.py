"""The EPCIS sink reads a stored GS1 code the way the agent wrote it (one rule: codes.parse_gs1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner_agent.outbox import Batch, BatchEvent, Outbox, OutboxThread
from scanner_agent.sinks.epcis import (
    EpcisCaptureClient,
    EpcisCaptureConfig,
    EpcisConfig,
    EpcisSink,
    epc_uri,
)

CFG = EpcisConfig("urn:x:rp", "urn:x:loc")
GTIN = "09506000134352"


@pytest.mark.parametrize(
    ("code", "uri"),
    [
        (f"(01){GTIN}(21)SN1\\(91)X", f"https://id.gs1.org/01/{GTIN}/21/SN1%2891%29X"),
        (f"(01){GTIN}(21)SN1(91)X", f"https://id.gs1.org/01/{GTIN}/21/SN1"),
        (f"(01){GTIN}(00)106141412345678908(21)A/B", f"https://id.gs1.org/01/{GTIN}/21/A%2FB"),
    ],
)
def test_a_serial_holding_parentheses_keeps_them_in_the_epc(code: str, uri: str) -> None:
    assert epc_uri(code, "gs1", CFG) == uri


@pytest.mark.parametrize("code", [f"(01){GTIN}", "(21)ABC", f"(01){GTIN}(21)A B"])
def test_a_code_that_is_not_a_gs1_trace_code_has_no_epc(code: str) -> None:
    with pytest.raises(ValueError, match="has no GTIN"):
        epc_uri(code, "gs1", CFG)


async def test_a_stored_gs1_code_with_no_epc_is_refused_alone_not_its_batch(tmp_path: Path) -> None:
    # A code an earlier, lenient agent stored (a space in the serial): it names no EPC, so the
    # sink refuses that one scan with the reason instead of failing the batch at every try.
    outbox = Outbox.open(tmp_path / "o.db")
    thread = OutboxThread(outbox)
    client = EpcisCaptureClient(EpcisCaptureConfig("http://repo.test", CFG))
    try:
        sink = EpcisSink(client, thread)
        events = tuple(
            BatchEvent(n, f"e{n}", code, "gs1", "ship", "", "2026-11-23T10:15:00+08:00", "s")
            for n, code in enumerate([f"(01){GTIN}(21)A B", f"(01){GTIN}(21)SN1\\(91)X"])
        )
        payload = await thread.call(sink.encode, Batch("b1", events, 0))
        assert list(payload.refused) == ["e0"]
        assert "has no GTIN (01) and serial (21)" in payload.refused["e0"]
    finally:
        await client.aclose()
        thread.shutdown()
        outbox.close()
