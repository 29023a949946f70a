"""``scanner-agent bill export BILL --format nhsa`` on a real outbox file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner_agent.bills import BillBook, ExpectedLine, PackRatio, PackTable
from scanner_agent.cli import main
from scanner_agent.outbox import EventResult, NewScan, Outbox, uuid7

UNIT_A = "81234560000000011234"
UNIT_B = "81234560000000022345"
UNIT_C = "81234560000000033456"
CARTON = "81234500000000099999"
GS1 = "(01)09506000134352(17)280500(10)L7(21)SER1"


def scan(code: str, bill: str, *, at: str = "2026-11-23T10:00:00.000+08:00") -> NewScan:
    gs1 = code.startswith("(")
    return NewScan(
        event_id=uuid7(),
        code=code,
        scheme="gs1" if gs1 else "cn20",
        raw=code,
        symbology=None,
        action="ship",
        bill=bill,
        device_id="till-1",
        source="test",
        scanned_at=at,
        product="09506000134352" if gs1 else code[:7],
    )


@pytest.fixture
def outbox_path(tmp_path: Path) -> Iterator[Path]:
    """A sales bill SO-1 (201), closed and synced, one code rejected by the platform.

    The outbox stays open while the tests run the command, as under a running daemon.
    """
    path = tmp_path / "outbox.db"
    box = Outbox.open(path)
    book = BillBook(box)
    book.open("SO-1", 201, device_id="till-1")
    book.import_expected("SO-1", [ExpectedLine("8123456", 3, "阿莫西林胶囊")])
    book.import_packs(PackTable(ratios=(PackRatio("8123450", 10, "8123456"),)))
    box.enqueue_many(
        [
            scan(UNIT_A, "SO-1", at="2026-11-23T10:00:00.000+08:00"),
            scan(UNIT_B, "SO-1", at="2026-11-23T10:01:00.000+08:00"),
            scan(UNIT_C, "SO-1", at="2026-11-23T10:02:00.000+08:00"),
            scan(GS1, "SO-1", at="2026-11-23T10:03:00.000+08:00"),
            scan(CARTON, "SO-1", at="2026-11-23T10:04:00.000+08:00"),
        ]
    )
    book.undo("SO-1", reason="wrong pack")  # the carton comes off the bill
    book.close("SO-1")
    batch = box.lease(10)
    assert batch is not None
    results = {e.event_id: EventResult("accepted") for e in batch.events}
    rejected = next(e.event_id for e in batch.events if e.code == UNIT_C)
    results[rejected] = EventResult("rejected", "追溯码已销售出库")
    box.settle(batch.batch_id, results)
    yield path
    box.close()


def export(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object], str]:
    code = main(["bill", "export", *args, "--format", "nhsa"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def test_a_sales_bill_becomes_3505_records_with_one_code_per_box(
    outbox_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc, err = export(capsys, "SO-1", "--outbox", str(outbox_path))
    assert code == 0
    assert (doc["infno"], doc["bill"]) == ("3505", "SO-1")
    cn20, gs1 = doc["records"]  # type: ignore[misc]
    assert cn20["drugtracinfo"] == [{"drug_trac_codg": UNIT_A}, {"drug_trac_codg": UNIT_B}]
    assert cn20["sel_retn_cnt"] == 2
    assert cn20["sel_retn_time"] == "2026-11-23 10:01:00"
    assert cn20["fixmedins_hilist_name"] == "阿莫西林胶囊"
    assert cn20["rtal_docno"] == "SO-1"
    assert gs1["drugtracinfo"] == [{"drug_trac_codg": GS1}]
    assert (gs1["manu_lotnum"], gs1["expy_end"]) == ("L7", "2028-05-31")
    # the removed carton is not there; the rejected code is set aside with the reason
    assert CARTON not in json.dumps(doc)
    assert doc["excluded"] == [{"code": UNIT_C, "reason": "追溯码已销售出库"}]
    assert "required fields empty: " in err
    assert "med_list_codg" in err


def test_catalogue_settings_and_output_file(
    outbox_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "\ufeffproduct,med_list_codg,fixmedins_hilist_id,fixmedins_bchno\n"
        "8123456,XJ01CAA040A001,HIS-001,B-17\n",
        encoding="utf-8",
    )
    out = tmp_path / "nhsa.json"
    code, doc, _ = export(
        capsys,
        "SO-1",
        "--outbox",
        str(outbox_path),
        "--catalog",
        str(catalog),
        "--set",
        "phar_name=李药师",
        "--output",
        str(out),
    )
    assert code == 0
    assert doc == {}  # nothing on stdout
    written = json.loads(out.read_text(encoding="utf-8"))
    rec = written["records"][0]
    assert (rec["med_list_codg"], rec["fixmedins_hilist_id"], rec["fixmedins_bchno"]) == (
        "XJ01CAA040A001",
        "HIS-001",
        "B-17",
    )
    assert rec["phar_name"] == "李药师"
    assert "med_list_codg" not in written["missing"][0]["fields"]


def test_an_explicit_record_type_and_trace_node(
    outbox_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["SO-1", "--outbox", str(outbox_path), "--record", "3502"]
    code, doc, _ = export(
        capsys, *args, "--trace-node", "drug_trac_info", "--set", "inv_chg_type=X"
    )
    assert code == 0
    assert (doc["infno"], doc["input_node"]) == ("3502", "invinfo")
    rec = doc["records"][0]  # type: ignore[index]
    assert rec["inv_chg_type"] == "X"
    assert rec["cnt"] == 2
    assert rec["drug_trac_info"][0] == {"drug_trac_codg": UNIT_A}


@pytest.mark.parametrize(
    ("args", "message", "status"),
    [
        (["NO-SUCH-BILL"], "Failed to find bill 'NO-SUCH-BILL'", 1),  # the export failed
        (["SO-1", "--set", "nonsense=1"], "nonsense: not a field of 3505", 2),  # usage
        (["SO-1", "--record", "3502", "--set", "phar_name=x"], "not a field of 3502", 2),
    ],
)
def test_errors_are_named_on_stderr(
    outbox_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
    status: int,
) -> None:
    code, doc, err = export(capsys, *args, "--outbox", str(outbox_path))
    assert code == status
    assert doc == {}
    assert message in err


def test_a_missing_outbox_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = export(capsys, "SO-1", "--outbox", str(tmp_path / "none.db"))
    assert code == 2
    assert "no such file" in err
    assert not (tmp_path / "none.db").exists()


def test_strict_exits_3_when_required_fields_are_empty(
    outbox_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without --strict the export succeeds and names the empty fields; with it, the same
    # export is "ran, but found problems" (3), so a script never passes the file on.
    code, doc, err = export(capsys, "SO-1", "--outbox", str(outbox_path))
    assert (code, bool(doc["missing"])) == (0, True)
    code, doc, err = export(capsys, "SO-1", "--outbox", str(outbox_path), "--strict")
    assert code == 3
    assert doc["records"]  # still written, for a look
    assert "required fields empty (--strict)" in err
    # Every required field given: --strict passes.
    required = sorted({f for m in doc["missing"] for f in m["fields"]})
    catalog = tmp_path / "full.csv"
    catalog.write_text(
        "product,"
        + ",".join(required)
        + "\n"
        + "\n".join(
            p + "," + ",".join("X" for _ in required) for p in ("8123456", "09506000134352")
        )
        + "\n",
        encoding="utf-8",
    )
    code, doc, err = export(
        capsys, "SO-1", "--outbox", str(outbox_path), "--strict", "--catalog", str(catalog)
    )
    assert (code, doc["missing"]) == (0, []), err


def test_the_console_script_runs_it(outbox_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scanner_agent", "bill", "export", "SO-1", "--format", "nhsa",
         "--outbox", str(outbox_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["records"][0]["drugtracinfo"][0] == {"drug_trac_codg": UNIT_A}
