"""医保 (NHSA) 3505/3506/3502 records built from a bill's boxes (pure, no files)."""

from __future__ import annotations

import pytest

from scanner_agent.exports.nhsa import (
    FIELDS,
    REQUIRED,
    Box,
    build_export,
    parse_catalog_csv,
    parse_settings,
    record_type_for,
)

A1 = "81234560000000011234"
A2 = "81234560000000022345"
B1 = "82000010000000033456"
GS1_L1 = "(01)09506000134352(11)250101(17)280500(10)L1(21)S1"
GS1_L1B = "(01)09506000134352(11)250101(17)280500(10)L1(21)S2"
GS1_L2 = "(01)09506000134352(17)290100(10)L2(21)S3"


def box(code: str, at: str = "2026-11-23T10:00:00+08:00", **kw: object) -> Box:
    product = code[:7] if code.isdigit() else "09506000134352"
    return Box(code=code, product=product, scanned_at=at, **kw)  # type: ignore[arg-type]


def test_a_sale_has_one_record_per_product_with_a_code_entry_per_box() -> None:
    doc = build_export(
        "RX-1",
        [box(A1, "2026-11-23T10:00:00+08:00"), box(B1), box(A2, "2026-11-23T10:05:09+08:00")],
        record="3505",
    )
    assert (doc["infno"], doc["infname"], doc["input_node"]) == ("3505", "商品销售", "selinfo")
    first, second = doc["records"]
    assert first["drugtracinfo"] == [{"drug_trac_codg": A1}, {"drug_trac_codg": A2}]
    assert first["sel_retn_cnt"] == 2
    assert first["sel_retn_time"] == "2026-11-23 10:05:09"  # the site's clock, latest scan
    assert first["rtal_docno"] == "RX-1"
    assert second["drugtracinfo"] == [{"drug_trac_codg": B1}]
    assert list(first)[: len(FIELDS["3505"])] == list(FIELDS["3505"])


def test_gs1_codes_give_lot_dates_and_split_records_by_lot() -> None:
    doc = build_export("RX-2", [box(GS1_L1), box(GS1_L2), box(GS1_L1B)], record="3505")
    lot1, lot2 = doc["records"]
    assert (lot1["manu_lotnum"], lot1["manu_date"], lot1["expy_end"]) == (
        "L1",
        "2025-01-01",
        "2028-05-31",
    )
    assert lot1["sel_retn_cnt"] == 2
    assert (lot2["manu_lotnum"], lot2["manu_date"], lot2["expy_end"]) == ("L2", "", "2029-01-31")
    assert any("bracketed form" in n for n in doc["notes"])


def test_unknown_required_fields_stay_empty_and_are_listed() -> None:
    doc = build_export("RX-3", [box(A1)], record="3505")
    (rec,) = doc["records"]
    assert rec["med_list_codg"] == ""
    assert rec["phar_name"] == ""
    (miss,) = doc["missing"]
    assert miss["product"] == "8123456"
    assert "med_list_codg" in miss["fields"]
    assert "manu_lotnum" in miss["fields"]  # a cn20 code carries no lot
    assert "sel_retn_cnt" not in miss["fields"]
    assert set(miss["fields"]) <= REQUIRED["3505"]


def test_settings_then_catalogue_then_scans_fill_the_fields() -> None:
    catalog = parse_catalog_csv(
        "product,med_list_codg,fixmedins_hilist_id,fixmedins_hilist_name,manu_lotnum,phar_name\n"
        "8123456,XA01ABC,HIS-1,阿莫西林胶囊,LOT-CAT,\n"
        "09506000134352,XB02DEF,HIS-2,布洛芬,LOT-CAT,药师乙\n",
        "3505",
    )
    settings = parse_settings(["phar_name=药师甲", "rtal_docno=POS-9", "trdn_flag=0"], "3505")
    doc = build_export(
        "RX-4", [box(A1), box(GS1_L1)], record="3505", catalog=catalog, settings=settings
    )
    cn20, gs1 = doc["records"]
    assert (cn20["med_list_codg"], cn20["fixmedins_hilist_id"]) == ("XA01ABC", "HIS-1")
    assert cn20["phar_name"] == "药师甲"  # the catalogue's empty cell leaves the setting
    assert gs1["phar_name"] == "药师乙"  # the catalogue beats the setting
    assert cn20["manu_lotnum"] == "LOT-CAT"  # the code has no lot
    assert gs1["manu_lotnum"] == "L1"  # the scanned lot beats the catalogue
    assert cn20["rtal_docno"] == "POS-9"
    assert cn20["trdn_flag"] == "0"


def test_the_site_product_name_is_a_fallback_with_a_note() -> None:
    doc = build_export("RX-5", [box(A1, name="阿莫西林")], record="3505")
    assert doc["records"][0]["fixmedins_hilist_name"] == "阿莫西林"
    assert any("site's own product list" in n for n in doc["notes"])


def test_a_carton_counts_its_units_and_says_so() -> None:
    doc = build_export("RX-6", [box(A1, units=10)], record="3505")
    assert doc["records"][0]["sel_retn_cnt"] == 10
    assert any("carton of 10 units" in n for n in doc["notes"])


def test_returns_and_stock_changes_use_their_own_fields() -> None:
    ret = build_export("RT-1", [box(A1)], record="3506")
    assert (ret["infname"], ret["input_node"]) == ("商品销售退货", "selinfo")
    assert "rtal_docno" not in ret["records"][0]
    assert ret["records"][0]["sel_retn_cnt"] == 1
    chg = build_export("ST-1", [box(A1), box(A2)], record="3502", trace_node="drug_trac_info")
    rec = chg["records"][0]
    assert (chg["input_node"], rec["cnt"], rec["inv_chg_time"]) == (
        "invinfo",
        2,
        "2026-11-23 10:00:00",
    )
    assert rec["drug_trac_info"] == [{"drug_trac_codg": A1}, {"drug_trac_codg": A2}]
    assert "inv_chg_type" in chg["missing"][0]["fields"]


@pytest.mark.parametrize(
    ("bill_type", "action", "record"),
    [(201, "ship", "3505"), (None, "sale", "3505"), (None, "dispense", "3505"),
     (116, "return", "3506"), (214, "stocktake", "3502"), (205, "destroy", "3502")],
)  # fmt: skip
def test_the_record_type_follows_the_bill(bill_type: int | None, action: str, record: str) -> None:
    assert record_type_for(bill_type, action) == record


def test_purchase_bills_are_not_guessed() -> None:
    with pytest.raises(ValueError, match="3503"):
        record_type_for(102, "purchase")


def test_bad_settings_and_catalogues_name_the_problem() -> None:
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_settings(["phar_name"], "3505")
    with pytest.raises(ValueError, match="not a field of 3502"):
        parse_settings(["phar_name=x"], "3502")
    with pytest.raises(ValueError, match="no 'product' column"):
        parse_catalog_csv("code,med_list_codg\n", "3505")
    with pytest.raises(ValueError, match="'price'"):
        parse_catalog_csv("product,price\n", "3505")
    with pytest.raises(ValueError, match="listed twice"):
        parse_catalog_csv("product,med_list_codg\n8123456,A\n8123456,B\n", "3505")
