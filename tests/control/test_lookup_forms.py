"""``lookup`` and ``bill remove --code`` over the real control socket take a GS1 code in any form.

A code is found by what it *is*, not by how it was typed: the element string
a scanner sends, the bracketed text, the stored code with its ``\\(`` escape,
a Digital Link URI or a bare element string all name the same row.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.tcp_protocol import parse_reply
from scanner_agent.codes import parse_gs1, parse_scan
from scanner_agent.control import ControlClient
from scanner_agent.outbox import NewScan, uuid7
from scanner_agent.traceserver import TraceServerThread
from tests.support.outbox import insert_checked, outbox_at_schema

GTIN = "09506000134352"
GS = "\x1d"
# Serial "SN1(91)X": a value holding "(", the case whose stored code once did not parse back.
SCANNED = f"]d201{GTIN}17250630104711{GS}21SN1(91)X"
STORED = f"(01){GTIN}(17)250630(10)4711(21)SN1\\(91)X"


def forms() -> list[str]:
    data = parse_gs1(STORED)
    assert not isinstance(data, str)
    link = data.digital_link("https://trace.example.cn")
    assert link is not None
    return [
        STORED,
        SCANNED,
        f"]Q3{data.element_string()}",
        data.element_string(),
        f"(21)SN1\\(91)X(10)4711(01){GTIN}(17)250630",  # any order
        link,
        f"  {STORED}  ",
    ]


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "control.sock"


@pytest.fixture
async def agent(
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
    sock: Path,
) -> Any:
    return await start_agent(make_config(trace_server.url, control={"socket": str(sock)}))


async def stored(agent: Any, *scans: str) -> list[str | None]:
    """Scan over TCP: the code each ACK says was stored (None for a NAK)."""
    replies = [parse_reply(f"{line}\n".encode()) for line in await agent.scan(*scans)]
    return [r.detail if r.accepted else None for r in replies]


async def call(sock: Path, cmd: str, **args: Any) -> Any:
    def go() -> Any:
        with ControlClient(str(sock), timeout=10) as client:
            return client.call(cmd, **args)

    return await asyncio.to_thread(go)


def test_the_forms_here_are_one_code() -> None:
    assert parse_scan(SCANNED).code == STORED
    assert {parse_scan(f.strip()).code for f in forms()} == {STORED}


async def test_lookup_finds_a_gs1_row_from_any_form_of_its_code(agent: Any, sock: Path) -> None:
    assert await stored(agent, SCANNED) == [STORED]
    for form in forms():
        found = await call(sock, "lookup", code=form)
        assert found["code"] == STORED, form
        assert [s["bill"] for s in found["scans"]] == ["test-dock-ship"], form


async def test_lookup_of_a_huge_code_is_refused_unparsed(agent: Any, sock: Path) -> None:
    found = await call(sock, "lookup", code="(01)" + "9" * 200_000)
    assert found["parsed"]["valid"] is False
    assert "too long: " in found["parsed"]["reason"]
    assert found["scans"] == []


@pytest.mark.parametrize("form", range(len(forms())))
async def test_bill_remove_takes_any_form_of_a_gs1_code(agent: Any, sock: Path, form: int) -> None:
    await call(sock, "bill.open", number="SO-GS1", type=201)
    assert await stored(agent, SCANNED, f"]d201{GTIN}21OTHER") == [STORED, f"(01){GTIN}(21)OTHER"]
    removal = await call(sock, "bill.remove", code=forms()[form], reason="damaged")
    assert removal["code"] == STORED
    view = await call(sock, "bill.show", number="SO-GS1")
    kept = {s["code"] for s in view["scans"] if not s["removed"]}
    assert kept == {f"(01){GTIN}(21)OTHER"}


# -- rows an earlier version stored --------------------------------------------------------------

SSCC = "106141412345678908"
LEGACY = [
    # (raw as scanned, code as versions before the \( escape stored it, code stored now)
    (SCANNED, f"(01){GTIN}(17)250630(10)4711(21)SN1(91)X", STORED),
    (
        f"]d201{GTIN}21A(B){GS}10L(1)",
        f"(01){GTIN}(10)L(1)(21)A(B)",
        f"(01){GTIN}(10)L\\(1)(21)A\\(B)",
    ),
    # biip ordered by (separator needed, AI): an SSCC came before the GTIN.
    (
        f"]C100{SSCC}01{GTIN}21SSCC1",
        f"(00){SSCC}(01){GTIN}(21)SSCC1",
        f"(01){GTIN}(00){SSCC}(21)SSCC1",
    ),
]


def write_legacy_rows(path: Path, bill: str) -> None:
    """An outbox at schema 8 (before issue 15's code form) holding the rows as it stored them."""
    db = outbox_at_schema(path, 8)
    at = "2026-11-01T08:00:00+00:00"
    db.execute(
        "INSERT INTO bills (number, type, action, device_id, opened_at) VALUES (?, 201, 'ship', ?, ?)",
        (bill, "test-dock", at),
    )
    insert_checked(
        db,
        (
            NewScan(
                uuid7(),
                old,
                "gs1",
                raw,
                raw[:3],
                "ship",
                bill,
                "test-dock",
                "tcp:old",
                at,
                GTIN,
                GTIN,
                None,
                None,
                parse_scan(raw).serial,
            )
            for raw, old, _new in LEGACY
        ),
    )
    db.close()


async def test_rows_an_earlier_version_stored_are_found_and_removed_from_any_form(
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
    sock: Path,
) -> None:
    cfg = make_config(trace_server.url, control={"socket": str(sock)}, sync={"enabled": False})
    write_legacy_rows(Path(cfg.outbox.path), "SO-OLD")
    agent = await start_agent(cfg)
    for raw, _old, new in LEGACY:
        assert parse_scan(raw).code == new
        for form in (raw, new):
            found = await call(sock, "lookup", code=form)
            assert [s["code"] for s in found["scans"]] == [new], form
    # The same carton scanned again is the duplicate it is, not a second row.
    replies = [parse_reply(f"{r}\n".encode()) for r in await agent.scan(*(r for r, _, _ in LEGACY))]
    assert [r.kind for r in replies] == ["duplicate"] * len(LEGACY)
    for raw, _old, new in LEGACY:
        removal = await call(sock, "bill.remove", number="SO-OLD", code=raw, reason="damaged")
        assert removal["code"] == new


def write_legacy_refusals(path: Path) -> None:
    """Duplicate refusals of the legacy codes, aggregated as the schema-8 agent kept them."""
    from scanner_agent.outbox import RejectRecord
    from scanner_agent.outbox._rejects import record_rejects

    db = sqlite3.connect(path, isolation_level=None)
    refused = [
        RejectRecord(raw, old, "duplicate scan", "duplicate", "test-dock", "tcp:old", at)
        for i, (raw, old, _new) in enumerate(LEGACY)
        for at in (f"2026-11-01T{8 + i:02d}:10:00.000", f"2026-11-01T{8 + i:02d}:20:00.000")
    ]
    record_rejects(db, refused, 1000)
    db.close()


async def test_refusals_an_earlier_version_kept_are_found_from_any_form(
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
    sock: Path,
) -> None:
    cfg = make_config(trace_server.url, control={"socket": str(sock)}, sync={"enabled": False})
    write_legacy_rows(Path(cfg.outbox.path), "SO-OLD")
    write_legacy_refusals(Path(cfg.outbox.path))
    agent = await start_agent(cfg)
    for raw, _old, new in LEGACY:
        for form in (raw, new):
            found = await call(sock, "lookup", code=form)
            assert [(r["code"], r["count"]) for r in found["refused"]] == [(new, 2)], form
    # The last refusal before the start, as the status shows it: today's code.
    last = (await agent.daemon.agent_status()).last_refusal
    assert last is not None
    assert (last.verdict, last.code) == ("duplicate", LEGACY[-1][2])
    await agent.stop()
    with sqlite3.connect(cfg.outbox.path) as db:
        kept = sorted(db.execute("SELECT raw FROM rejects").fetchall())
    assert kept == sorted((raw,) for raw, _old, _new in LEGACY), "each sample's raw scan kept"
