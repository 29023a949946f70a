"""Bills on a real outbox file: open, hold back from sync, remove, close, progress, packs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scanner_agent.bills import (
    BillBook,
    BillError,
    BillState,
    ExpectedLine,
    PackRatio,
    PackTable,
    bill_type,
    bill_types,
    parse_expected_csv,
    parse_packs_csv,
)
from scanner_agent.outbox import EnqueueStatus, EventResult, NewScan, Outbox, uuid7

CARTON = "81234500000000011111"
UNIT_A = "81234560000000011234"
UNIT_B = "81234560000000022345"


def scan(code: str, *, bill: str, action: str = "ship") -> NewScan:
    return NewScan(
        event_id=uuid7(),
        code=code,
        scheme="cn20",
        raw=code,
        symbology=None,
        action=action,
        bill=bill,
        device_id="dock",
        source="test",
        scanned_at="2026-11-23T10:00:00.000+00:00",
        product=code[:7],
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox.open(tmp_path / "outbox.db")
    yield box
    box.close()


@pytest.fixture
def book(outbox: Outbox) -> BillBook:
    return BillBook(outbox)


def test_bill_types_cover_the_platform_codes_with_names_and_actions() -> None:
    types = bill_types()
    assert {101, 102, 103, 104, 201, 202, 203, 205}.issubset(types)
    assert bill_type(205).zh == "销毁出库"
    assert bill_type("201").action == "ship"
    assert all(t.direction == ("in" if t.code < 200 else "out") for t in types.values())
    with pytest.raises(BillError, match="expected one of"):
        bill_type(999)


def test_open_bill_holds_its_scans_back_from_sync_until_closed(
    book: BillBook, outbox: Outbox
) -> None:
    bill = book.open("SO-1", 201, device_id="dock", from_party="仓库A", to_party="药房B")
    assert (bill.state, bill.action, bill.type_zh) == ("open", "ship", "销售出库")
    outbox.enqueue_many([scan(UNIT_A, bill="SO-1"), scan(UNIT_B, bill="dock-ship")])
    batch = outbox.lease(10)
    assert batch is not None
    assert [e.code for e in batch.events] == [UNIT_B]  # the default bill syncs at once
    assert outbox.stats().held == 1
    closed = book.close("SO-1")
    assert closed.state == "closed"
    batch2 = outbox.lease(10)
    assert batch2 is not None
    assert [e.code for e in batch2.events] == [UNIT_A]
    outbox.settle(batch2.batch_id, {batch2.events[0].event_id: EventResult("accepted")})
    assert book.get("SO-1").state == BillState.DELIVERED


def test_a_refused_scan_makes_a_closed_bill_partly_rejected(book: BillBook, outbox: Outbox) -> None:
    book.open("SO-2", 201, device_id="dock")
    outbox.enqueue_many([scan(UNIT_A, bill="SO-2"), scan(UNIT_B, bill="SO-2")])
    book.close("SO-2")
    batch = outbox.lease(10)
    assert batch is not None
    outbox.settle(
        batch.batch_id,
        {
            batch.events[0].event_id: EventResult("accepted"),
            batch.events[1].event_id: EventResult("rejected", "code not registered"),
        },
    )
    bill = book.get("SO-2")
    assert bill.state == BillState.PARTLY_REJECTED
    assert (bill.totals.delivered, bill.totals.rejected) == (1, 1)
    view = book.view("SO-2")
    assert {s.code: s.result for s in view.scans} == {UNIT_A: "accepted", UNIT_B: "rejected"}


def test_one_open_bill_per_device_and_action_and_numbers_are_unique(book: BillBook) -> None:
    book.open("SO-3", 201, device_id="dock")
    with pytest.raises(BillError, match="is open for ship") as err:
        book.open("SO-4", 203, device_id="dock", action="ship")
    assert err.value.code == "conflict"
    book.open("PO-1", 102, device_id="dock")  # another action is fine
    book.open("SO-5", 201, device_id="dock-2")  # another device is fine
    book.close("SO-3")
    with pytest.raises(BillError, match="exists"):
        book.open("SO-3", 201, device_id="dock")


def test_a_number_already_used_by_scans_cannot_be_opened(book: BillBook, outbox: Outbox) -> None:
    outbox.enqueue_many([scan(UNIT_A, bill="dock-ship")])
    with pytest.raises(BillError, match="already taken"):
        book.open("dock-ship", 201, device_id="dock")


def test_undo_keeps_the_row_logs_the_reason_and_lets_the_code_be_scanned_again(
    book: BillBook, outbox: Outbox
) -> None:
    book.open("SO-6", 201, device_id="dock")
    outbox.enqueue_many([scan(UNIT_A, bill="SO-6"), scan(UNIT_B, bill="SO-6")])
    removal = book.undo("SO-6", reason="wrong carton", origin="test")
    assert (removal.code, removal.reason) == (UNIT_B, "wrong carton")
    rows = outbox.rows(bill="SO-6")
    assert [(r.code, r.removed) for r in rows] == [(UNIT_A, 0), (UNIT_B, 1)]
    assert outbox.stats().removed == 1
    again = outbox.enqueue_many([scan(UNIT_B, bill="SO-6")])
    assert again[0].status is EnqueueStatus.QUEUED
    dup = outbox.enqueue_many([scan(UNIT_A, bill="SO-6")])
    assert dup[0].status is EnqueueStatus.DUPLICATE
    view = book.view("SO-6")
    assert view.bill.totals.scans == 2
    assert view.bill.totals.removed == 1
    assert [r.reason for r in view.removals] == ["wrong carton"]
    assert [h["event"] for h in book.history("SO-6")] == ["open", "remove"]


def test_removed_scans_are_never_sent_and_leave_the_backlog(book: BillBook, outbox: Outbox) -> None:
    book.open("SO-7", 201, device_id="dock")
    outbox.enqueue_many([scan(UNIT_A, bill="SO-7"), scan(UNIT_B, bill="SO-7")])
    book.remove("SO-7", code=UNIT_A, reason="damaged")
    book.close("SO-7")
    batch = outbox.lease(10)
    assert batch is not None
    assert [e.code for e in batch.events] == [UNIT_B]
    outbox.settle(batch.batch_id, {batch.events[0].event_id: EventResult("accepted")})
    assert outbox.stats().backlog == 0
    assert outbox.lease(10) is None


def test_closed_bills_and_sent_scans_cannot_be_changed(book: BillBook, outbox: Outbox) -> None:
    book.open("SO-8", 201, device_id="dock")
    outbox.enqueue_many([scan(UNIT_A, bill="SO-8")])
    book.close("SO-8")
    with pytest.raises(BillError, match="closed"):
        book.undo("SO-8", reason="x")
    with pytest.raises(BillError, match="it is closed"):
        book.close("SO-8")
    # A default bill syncs continuously: a scan already leased is out of reach.
    outbox.enqueue_many([scan(UNIT_B, bill="dock-ship")])
    assert outbox.lease(10) is not None
    with pytest.raises(BillError, match="already sent"):
        book.undo("dock-ship", reason="x")
    book.open("SO-9", 201, device_id="dock")
    outbox.enqueue_many([scan(UNIT_B, bill="SO-9")])
    with pytest.raises(BillError, match="reason is required"):
        book.undo("SO-9", reason="  ")


def test_progress_counts_cartons_as_units_against_the_expected_list(
    book: BillBook, outbox: Outbox
) -> None:
    book.open("SO-10", 201, device_id="dock")
    book.import_packs(PackTable(ratios=(PackRatio("8123450", 10, "8123456", "阿莫西林 10盒/箱"),)))
    book.import_expected(
        "SO-10",
        [ExpectedLine("8123456", 12, "阿莫西林胶囊"), ExpectedLine("8999999", 5, "布洛芬")],
    )
    outbox.enqueue_many(
        [
            scan(CARTON, bill="SO-10"),
            scan(UNIT_A, bill="SO-10"),
            scan(UNIT_B, bill="SO-10"),
            scan("87777770000000011111", bill="SO-10"),
        ]
    )
    view = book.view("SO-10")
    lines = {ln.product: ln for ln in view.lines}
    amox = lines["8123456"]
    assert (amox.name, amox.expected, amox.scanned, amox.cartons, amox.missing, amox.extra) == (
        "阿莫西林胶囊",
        12,
        12,
        1,
        0,
        0,
    )
    assert (lines["8999999"].missing, lines["8999999"].scanned) == (5, 0)
    assert (lines["8777777"].expected, lines["8777777"].extra) == (0, 1)
    assert (view.bill.totals.cartons, view.bill.totals.units) == (1, 13)
    carton = next(s for s in view.scans if s.code == CARTON)
    assert (carton.carton, carton.units, carton.product) == (True, 10, "8123456")


def test_parent_child_relations_count_a_carton_as_its_children(
    book: BillBook, outbox: Outbox
) -> None:
    book.open("SO-11", 201, device_id="dock")
    book.import_packs(PackTable(children=((CARTON, UNIT_A), (CARTON, UNIT_B))))
    outbox.enqueue_many([scan(CARTON, bill="SO-11")])
    assert book.get("SO-11").totals.units == 2


def test_lookup_shows_every_scan_refusal_and_removal_of_a_code(
    book: BillBook, outbox: Outbox
) -> None:
    book.open("SO-12", 201, device_id="dock")
    outbox.enqueue_many([scan(UNIT_A, bill="SO-12"), scan(UNIT_A, bill="SO-12")])
    book.undo("SO-12", reason="test")
    history = book.lookup(UNIT_A)
    assert [s["bill"] for s in history.scans] == ["SO-12"]
    assert [r["reason"] for r in history.refused] == ["duplicate scan"]
    assert [r.reason for r in history.removals] == ["test"]


def test_expected_csv_accepts_chinese_headers_bom_tabs_and_sums_repeats() -> None:
    text = "\ufeff药品标识码\t名称\t数量\n8123456\t阿莫西林\t10\n6901234567892\t布洛芬\t2\n8123456\t\t5\n"
    lines = parse_expected_csv(text)
    assert [(e.product, e.count, e.name) for e in lines] == [
        ("8123456", 15, "阿莫西林"),
        ("06901234567892", 2, "布洛芬"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("foo,bar\n1,2\n", "expected a header"),
        ("product,count\n8123456,many\n", "line 2"),
        ("product,count\n8123456,-1\n", "line 2"),
    ],
)
def test_bad_expected_lists_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(BillError, match=message):
        parse_expected_csv(text)


def test_pack_csv_reads_ratios_or_relations() -> None:
    assert parse_packs_csv("parent,child\nA,B\nA,C\n").children == (("A", "B"), ("A", "C"))
    ratios = parse_packs_csv("gtin,units,name\n6901234567892,20,箱\n").ratios
    assert ratios[0].key == "06901234567892"
    with pytest.raises(BillError, match="line 2"):
        parse_packs_csv("product,units\n8123450,0\n")


IMPORT_ROWS = 5_000
"""Rows one import may hold (docs/control.md, "bill.import")."""

_IMPORTS: dict[str, tuple[str, Callable[[int], str], Callable[[str], object]]] = {
    "expected list": (
        "product,count,name\n",
        lambda i: f"{6900000000000 + i},2,N{i}\n",
        parse_expected_csv,
    ),
    "pack ratios": ("product,units\n", lambda i: f"{6900000000000 + i},10\n", parse_packs_csv),
    "pack relations": ("parent,child\n", lambda i: f"P{i // 20},C{i}\n", parse_packs_csv),
}


@pytest.mark.parametrize("kind", list(_IMPORTS))
def test_an_import_over_the_row_limit_is_refused_naming_the_limit(kind: str) -> None:
    """Issue 16: an import is written in one transaction on the outbox thread, the thread
    that commits every scan: a 1 MiB expected list (42,500 products) kept a scanner waiting
    2.1 s for its ACK (bench/attack.py, control-import).  Its rows are bounded, and a file
    over the bound is refused while it is read, before any of it is written."""
    header, row, parse = _IMPORTS[kind]
    at_limit = header + "".join(row(i) for i in range(IMPORT_ROWS))
    parse(at_limit)
    with pytest.raises(BillError, match=f"more than {IMPORT_ROWS:,} rows"):
        parse(at_limit + row(IMPORT_ROWS))


def test_a_bill_keeps_its_optional_platform_parameters_from_open(book: BillBook) -> None:
    book.open("SO-P", 203, device_id="dock", params={"warehouse_id": "WH-2", "qu_receivable": 40})
    assert book.platform_params("SO-P") == {"warehouse_id": "WH-2", "qu_receivable": "40"}
    assert [h["event"] for h in book.history("SO-P")] == ["open", "platform-params"]
    book.open("SO-Q", 201, device_id="dock", action="sale")
    assert book.platform_params("SO-Q") == {}
    assert book.platform_params("NO-SUCH-BILL") == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"warehouse": "W"}, "params.warehouse: not an optional parameter"),
        ({"to_user_id": "x"}, "params.to_user_id: not an optional parameter"),
        ({"drug_id": None}, "params.drug_id: expected a string or a number"),
    ],
)
def test_bad_platform_parameters_refuse_the_open(
    book: BillBook, params: dict[str, object], message: str
) -> None:
    with pytest.raises(BillError, match=message) as info:
        book.open("SO-X", 201, device_id="dock", params=params)
    assert info.value.code == "bad_request"
    with pytest.raises(BillError, match="Failed to find bill"):
        book.get("SO-X")


def test_a_bills_times_come_from_the_outbox_clock(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)]
    with Outbox.open(tmp_path / "outbox.db", clock=lambda: now[0]) as box:
        book = BillBook(box)
        opened = book.open("SO-T", 201, device_id="dock")
        box.enqueue_many([scan(UNIT_A, bill="SO-T")])
        now[0] += timedelta(minutes=7)
        removal = book.undo("SO-T", reason="wrong box", origin="test")
        now[0] += timedelta(hours=2)
        closed = book.close("SO-T")
        history = book.history("SO-T")
    assert opened.opened_at == "2026-11-23T08:00:00.000+00:00"
    assert removal.removed_at == "2026-11-23T08:07:00.000+00:00"
    assert closed.closed_at == "2026-11-23T10:07:00.000+00:00"
    assert [(h["event"], h["at"]) for h in history] == [
        ("open", opened.opened_at),
        ("remove", removal.removed_at),
        ("close", closed.closed_at),
    ]


def test_the_history_of_a_number_never_used_is_an_error_only_when_asked(
    book: BillBook, outbox: Outbox
) -> None:
    assert book.history("NEVER") == []
    with pytest.raises(BillError, match="Failed to find bill 'NEVER'") as info:
        book.history("NEVER", must_exist=True)
    assert info.value.code == "not_found"
    outbox.enqueue_many([scan(UNIT_B, bill="dock-ship")])  # a default bill: scans, no log
    assert book.history("dock-ship", must_exist=True) == []
    book.open("SO-H", 201, device_id="dock")
    assert [h["event"] for h in book.history("SO-H", must_exist=True)] == ["open"]
