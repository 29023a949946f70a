"""At 80 columns what a decision needs stays readable: labels fit, codes keep both ends,
the footer keeps Quit and the keys of the view on screen."""

from __future__ import annotations

from typing import Any

import pytest
from rich.cells import cell_len
from textual.pilot import Pilot
from textual.widgets import DataTable
from textual.widgets._footer import FooterKey

from scanner_agent.tui import DispatchApp, DocksApp
from scanner_agent.tui._docks_screen import BILL_CELLS, bill_cell
from scanner_agent.tui._format import (
    REASON_CELLS,
    REASON_SHORT,
    elide_middle,
    reason_full,
    reason_short,
)
from tests.tui.fake_agent import BILL_VIEW, REFUSALS, FakeAgent


@pytest.mark.parametrize("event", REFUSALS, ids=lambda e: str(e["reason"])[:30])
def test_every_refusal_reason_has_a_label_that_fits_and_its_full_text(event: Any) -> None:
    reason = str(event["reason"])
    short = reason_short(reason)
    assert short in REASON_SHORT.values()  # defined in the one table, not cut by chance
    assert cell_len(short) <= REASON_CELLS
    assert reason in reason_full(reason)
    assert reason_full(reason).startswith(short)


@pytest.mark.parametrize(
    ("code", "head", "tail"),
    [
        ("(01)06901234567892(21)A1B2C3", "(01)069012", "(21)A1B2C3"),
        ("(01)06901234567892(17)271231(10)LOT-2026-11-A(21)SN000000123456789", "(01)069", "6789"),
        ("81234560000000011234", "81234560000000011234", ""),
    ],
)
def test_codes_are_elided_in_the_middle_keeping_product_and_serial(
    code: str, head: str, tail: str
) -> None:
    shown = elide_middle(code, 24)
    assert cell_len(shown) <= 24
    assert shown.startswith(head)
    assert shown.endswith(tail)


def test_chinese_names_are_elided_by_cells_not_characters() -> None:
    shown = elide_middle("复方氨酚烷胺胶囊(感康)复方氨酚烷胺胶囊", 14)
    assert cell_len(shown) <= 14
    assert "…" in shown


async def footer_keys(pilot: Pilot[Any]) -> dict[str, int]:
    """Footer keys shown whole within the screen, with their right edge."""
    await pilot.pause()
    width = pilot.app.size.width
    shown = {}
    for key in pilot.app.query(FooterKey):
        region = key.region
        if region.width and region.right <= width:
            shown[key.description] = region.right
    return shown


@pytest.mark.parametrize(
    ("view", "own"), [("1", set()), ("2", {"Remove"}), ("3", set()), ("4", set())]
)
async def test_the_footer_keeps_quit_and_the_views_keys_at_80_columns(
    view: str, own: set[str]
) -> None:
    app = DispatchApp(FakeAgent(), blink=False, poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(200):
            if app.dispatch.bill_view is not None:
                break
            await pilot.pause(0.01)
        await pilot.press(view)
        shown = await footer_keys(pilot)
        assert {"Quit", "Open", "Close", "Undo", "Find", "Import", "Bell", "Views"} | own <= set(
            shown
        ), shown
        if not own:
            assert "Remove" not in shown  # not offered where it does nothing


async def test_every_column_of_the_docks_overview_shows_whole_at_80_columns() -> None:
    app = DocksApp([("/run/d1.sock", FakeAgent())], poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.overview.query_one("#docks-table", DataTable)
        widths = [c.get_render_width(table) for c in table.columns.values()]
        # The last column ("alarms", then "⚠ 3") ends inside the screen, scrollbar aside.
        assert sum(widths) <= 80 - 1, widths
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[-1] == "alarms"
        assert all(c.width >= len(str(c.label)) for c in table.columns.values()), labels


def test_the_docks_bill_cell_keeps_the_progress_and_cuts_the_number() -> None:
    cell = bill_cell(BILL_VIEW)  # SO-2026-0001, 11/20 and one unexpected unit
    assert cell.cell_len <= BILL_CELLS
    assert cell.plain.endswith(" 11/20 +1"), cell.plain
    assert cell.plain.startswith("SO-2"), cell.plain
    assert "…" in cell.plain, cell.plain
    assert bill_cell(None).plain == "no bill open"
