"""``lookup`` and ``bill remove --code`` over the real control socket take a GS1 code in any form.

A code is found by what it *is*, not by how it was typed: the element string
a scanner sends, the bracketed text, the stored code with its ``\\(`` escape,
a Digital Link URI or a bare element string all name the same row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.tcp_protocol import parse_reply
from scanner_agent.codes import parse_gs1, parse_scan
from scanner_agent.control import ControlClient
from scanner_agent.traceserver import TraceServerThread

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
