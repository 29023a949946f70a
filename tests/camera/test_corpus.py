"""``scanner-agent decode`` over the zxing-cpp sample corpus: at least what either library reads.

Per folder, the codes read correctly by ``decode`` (default decoder, the folder's
symbology as the format hint) must reach the better of zxing-cpp alone and pyzbar
alone, both measured here on the installed versions, and the README's reference
figures; no image may give a text other than its expected one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.decoders import pyzbar_available
from scanner_agent.cli import main
from tests.support.corpus import unescape

FOLDERS = {
    "code128-1": "Code128",
    "code128-2": "Code128",
    "datamatrix-1": "DataMatrix",
    "datamatrix-2": "DataMatrix",
    "datamatrix-4": "DataMatrix",
    "ean13-1": "EAN13",
    "ean13-3": "EAN13",
    "qrcode-1": "QRCode",
    "qrcode-2": "QRCode",
    "qrcode-5": "QRCode",
}
README_FLOOR = {
    "code128-1": 6,
    "code128-2": 14,
    "datamatrix-1": 30,
    "datamatrix-2": 13,
    "datamatrix-4": 21,
    "ean13-1": 14,
    "ean13-3": 8,
    "qrcode-1": 8,
    "qrcode-2": 53,
    "qrcode-5": 16,
}
"""Reference counts from shared/README.md (zxing-cpp 3.1.1 and pyzbar 0.1.9, best of the two)."""
SECOND_SYMBOLS = {"qrcode-2/16.webp": "[外側QRコード]"}
"""Images holding a second, real symbol besides the expected one (a "double QR"): its text
starts with this and is not a misread."""
IMAGE_SUFFIXES = (".png", ".jpg", ".webp")


def expected(image: Path) -> str | bytes:
    """The expected payload: ``<stem>.txt`` with CRLF folded to LF, else ``<stem>.bin``."""
    txt = image.with_suffix(".txt")
    if txt.exists():
        return txt.read_text(encoding="utf-8").replace("\r\n", "\n")
    return image.with_suffix(".bin").read_bytes()


def images(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.iterdir()) if p.suffix in IMAGE_SUFFIXES)


def is_correct(exp: str | bytes, text: str, payload_hex: str | None) -> bool:
    if isinstance(exp, bytes):
        return payload_hex is not None and bytes.fromhex(payload_hex) == exp
    return text.replace("\r\n", "\n") == exp


def zxing_alone(folder: Path, fmt: str) -> int:
    import cv2
    import zxingcpp

    n = 0
    for p in images(folder):
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        reads = zxingcpp.read_barcodes(
            img,
            formats=zxingcpp.BarcodeFormats(zxingcpp.barcode_format_from_str(fmt)),
            text_mode=zxingcpp.TextMode.Plain,
        )
        exp = expected(p)
        n += any(is_correct(exp, r.text, r.bytes.hex() if not r.text else None) for r in reads)
    return n


def pyzbar_alone(folder: Path, fmt: str) -> int:
    if fmt == "DataMatrix" or not pyzbar_available():
        return 0
    import cv2
    from pyzbar import pyzbar

    symbol = {"Code128": "CODE128", "EAN13": "EAN13", "QRCode": "QRCODE"}[fmt]
    n = 0
    for p in images(folder):
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        exp = expected(p)
        reads = pyzbar.decode(img, symbols=[pyzbar.ZBarSymbol[symbol]])
        n += any(is_correct(exp, r.data.decode("utf-8", "replace"), None) for r in reads)
    return n


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_decode_reads_at_least_what_either_library_reads_alone(
    corpus: Path, folder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = corpus / folder
    if not path.is_dir():
        pytest.skip(f"{path} is not in this copy of the corpus")
    fmt = FOLDERS[folder]
    status = main(["decode", str(path), "--formats", fmt])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # 3 when some image gave no code (each is named on stderr), 0 when every one gave one.
    gave_none = {p.name for p in images(path)} - {Path(line["file"]).name for line in lines}
    assert status == (3 if gave_none else 0), sorted(gave_none)

    correct: set[str] = set()
    wrong: list[tuple[str, str]] = []
    for line in lines:
        image = Path(line["file"])
        text = unescape(line["text"])
        if is_correct(expected(image), text, line.get("hex")):
            correct.add(image.name)
            assert line["format"] == fmt
            assert line["parse"]["raw"].startswith(line["symbology"])
        elif not text.startswith(SECOND_SYMBOLS.get(f"{folder}/{image.name}", "\0")):
            wrong.append((image.name, text[:40]))

    assert wrong == []
    floor = max(zxing_alone(path, fmt), pyzbar_alone(path, fmt), README_FLOOR[folder])
    assert len(correct) >= floor, f"{folder}: {len(correct)} read, {floor} expected"


def test_gs1_datamatrix_keeps_its_identifier_and_group_separators(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = corpus / "datamatrix-1" / "gs1-figure-4.15.1-2-32x32.png"
    assert main(["decode", str(image)]) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["symbology"] == "]d2"
    assert "\\x1d10" in line["text"]
    assert line["parse"]["scheme"] == "gs1"
    assert line["parse"]["valid"] is True
    assert line["parse"]["gtin"] == "09504000059101"


def test_decode_exits_3_when_nothing_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "blank.png"), np.full((120, 160), 200, np.uint8))
    assert main(["decode", str(tmp_path / "blank.png"), "--decoder", "both"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "blank.png: no code found (1 frame)" in captured.err  # said, not silent
    assert "decoded 1 file: 0 codes; 1 file with no code" in captured.err


def test_decode_names_a_missing_path_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["decode", str(tmp_path / "nope.png")]) == 2
    assert "nope.png" in capsys.readouterr().err
