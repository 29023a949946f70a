"""``parse_scan``: one scan in, one :class:`ScanResult` out, never an exception.

The reader thread calls this for every frame a scanner sends, so three rules
shape it. It must not raise, whatever arrives on the wire (line noise, a
scanner in the wrong keyboard layout, a mis-set terminator): one bad read
must not stop the reader. It must be cheap for the common case, a cn20
code, which is decided by string tests before any GS1 work. And its cost must
be bounded whatever arrives: a scan longer than the longest any symbol
carries (:data:`MAX_SCAN_CHARS`) is refused as too long before any parsing,
and every parser below is a single linear pass.

Surrounding whitespace is dropped for the scan as a whole (a cn20 code with a
trailing space is still that code), but not inside GS1 data: spaces are not in
any GS1 character set, so ``(21)ABC `` is refused, never stored as ``ABC``.
"""

from __future__ import annotations

from collections.abc import Sequence

from scanner_agent.codes import _cn20, _gs1, _ma
from scanner_agent.codes._gs1_digital_link import looks_like_digital_link
from scanner_agent.codes._gs1_element_string import looks_like_element_string
from scanner_agent.codes._gs1_hri import MAX_HRI
from scanner_agent.codes._gs1_text import GS, too_long
from scanner_agent.codes._result import Decoded, ScanResult, Scheme, one_line
from scanner_agent.codes._symbology import split_symbology

ISO_15434_HEADER = "[)>\x1e"
TERMINATORS = "\r\n\t"
"""What scanners append to a read (CR, LF, CR LF, Tab): never data."""

MAX_SCAN_CHARS = MAX_HRI + 16
"""The longest scan looked at: the longest GS1 form (bracketed HRI, 4,674 characters) with
room for an AIM identifier and terminators. Anything longer is refused unparsed."""

EMPTY = "empty scan"
NON_PRINTABLE = "unreadable scan: non-printable characters"
ISO_15434 = "iso/iec 15434 envelope ([)>): not supported"
UNRECOGNISED = "not a recognised trace code"


def decode_bytes(data: bytes) -> str:
    """Decode scanner bytes without ever failing.

    UTF-8 first (what modern scanners and GS1 Digital Links use), then GB18030
    (the Chinese national superset of GBK/GB2312, which older scanners and
    keyboard-wedge set-ups emit), then latin-1, which maps every byte and so
    keeps the scan for the record even when it is garbage.
    """
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def parse_scan(data: bytes | str) -> ScanResult:
    """Classify and validate one scan.

    ``data`` is one frame from a scanner, terminator included or not, with or
    without an AIM symbology identifier. The result is always returned, with
    ``valid=False`` and a short ``reason`` when the scan is not a trace code.
    """
    try:
        raw = _as_text(data)
    except Exception:
        return _reject("", "", None, f"unsupported input type: {type(data).__name__}")
    try:
        return _parse_text(raw)
    except Exception as exc:  # a bug here must not stop the reader
        return _reject(raw, raw.strip(), None, f"internal parser error: {_exc_text(exc)}")


def parse_many(frames: Sequence[bytes | str]) -> list[ScanResult]:
    """:func:`parse_scan` for each frame of one read, in order.

    The same results, cheaper per frame for the common case: a frame of
    exactly 20 ASCII digits starting with 8 is a cn20 code as it stands (no
    whitespace to strip, nothing to decode but ASCII), so it skips the
    per-frame function calls a TCP read of 64 codes would otherwise pay.
    """
    cn20 = Scheme.CN20
    make = ScanResult._make  # tuple.__new__: half the cost of the named tuple's own __new__
    out: list[ScanResult] = []
    append = out.append
    for data in frames:
        if type(data) is bytes and len(data) == 20 and data[0] == 0x38 and data.isdigit():
            text = data.decode("ascii")
            append(
                make(
                    (
                        text,
                        text,
                        None,
                        cn20,
                        True,
                        None,
                        text,
                        text[:7],
                        text[7:16],
                        None,
                        None,
                        None,
                    )
                )
            )
        else:
            append(parse_scan(data))
    return out


def _as_text(data: object) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return decode_bytes(bytes(data))
    msg = f"expected bytes or str, got {type(data).__name__}"
    raise TypeError(msg)


def _exc_text(exc: Exception) -> str:
    return one_line(f"{type(exc).__name__}: {exc}")


def _parse_text(raw: str) -> ScanResult:
    if len(raw) > MAX_SCAN_CHARS:
        return _reject(raw, "", None, _too_long(raw))
    stripped = raw.strip()
    # Fast path: a bare cn20 code needs no symbology or GS1 work at all (and no
    # intermediate object: this line runs for most scans in a Chinese warehouse).
    if _cn20.is_cn20(stripped):
        return ScanResult(
            raw, stripped, None, Scheme.CN20, True, None, stripped, stripped[:7], stripped[7:16]
        )

    symbology, gs1_symbology, text = split_symbology(stripped)
    outcome = _classify(text, _gs1_payload(raw, symbology), gs1_symbology=gs1_symbology)
    if isinstance(outcome, str):
        return _reject(raw, text, symbology, outcome)
    return _accept(raw, text, symbology, outcome)


def _too_long(raw: str) -> str:
    """Why a scan over :data:`MAX_SCAN_CHARS` is refused, found without reading it through.

    Bracketed text gets the reason the trace service gives for a code that long
    (its own bound is lower); anything else the generic one.
    """
    head = raw[:64].lstrip()
    if head.startswith("("):
        return too_long(len(raw.strip(TERMINATORS)), MAX_HRI)
    return f"too long: {len(raw)} characters, at most {MAX_SCAN_CHARS}"


def _gs1_payload(raw: str, symbology: str | None) -> str:
    """The data as GS1 parsers must see it: only terminators (and the identifier) taken off.

    Spaces around GS1 data are inside the frame the scanner sent, so they are
    data, and data GS1 does not allow; stripping them would store a different
    code than the one read.
    """
    framed = raw.strip(TERMINATORS)
    if symbology is None:
        return framed
    lead = len(framed) - len(framed.lstrip())
    return framed[lead + len(symbology) :]


def _classify(text: str, gs1_text: str, *, gs1_symbology: bool) -> Decoded | str:
    """Pick the scheme the data claims to be, then let that scheme judge it.

    ``text`` is the data stripped of whitespace, which decides the scheme;
    ``gs1_text`` is the same data with its spaces, which a GS1 parser judges.
    """
    if not text:
        return EMPTY
    if text.startswith(ISO_15434_HEADER):
        return ISO_15434
    # Bracketed text and Digital Links judge every character themselves, naming the AI
    # that holds one GS1 does not allow: the reason the trace service gives for the code.
    if text.startswith("("):
        return _gs1.parse_hri(gs1_text)
    if looks_like_digital_link(text):
        return _gs1.parse_digital_link(gs1_text)
    if not text.replace(GS, "").isprintable():
        return NON_PRINTABLE
    if text.isascii() and text.isdigit():
        return _classify_digits(text, gs1_text, gs1_symbology=gs1_symbology)
    if _ma.looks_like_ma(text):
        return _ma.parse_ma(text)
    if gs1_symbology or looks_like_element_string(text):
        return _gs1.parse_element_string(gs1_text)
    return UNRECOGNISED


def _classify_digits(digits: str, gs1_text: str, *, gs1_symbology: bool) -> Decoded | str:
    """All-digit data: cn20, a GS1 element string, or a known wrong scan."""
    if _cn20.is_cn20(digits):
        # Even under a GS1 symbology: a GS1 message starting with 8 has no
        # GTIN, so it could never be a trace code, while cn20 can.
        return _cn20.decode_cn20(digits)
    if gs1_symbology:
        return _gs1.parse_element_string(gs1_text)
    if _gs1.is_product_barcode(digits):
        return _gs1.PRODUCT_BARCODE
    if looks_like_element_string(digits):
        # ``01`` + GTIN (+ more AIs) sent without AIM identifier; this also
        # takes 20 digits starting ``01``, which may be GTIN + a 2-digit serial.
        return _gs1.parse_element_string(gs1_text)
    return _cn20.reject_digits(digits) or f"not a trace code: {len(digits)}-digit number"


def _accept(raw: str, text: str, symbology: str | None, decoded: Decoded) -> ScanResult:
    return ScanResult(
        raw=raw,
        text=text,
        symbology=symbology,
        scheme=decoded.scheme,
        valid=True,
        reason=None,
        code=decoded.code,
        product=decoded.product,
        serial=decoded.serial,
        gtin=decoded.gtin,
        batch=decoded.batch,
        expiry=decoded.expiry,
    )


def _reject(raw: str, text: str, symbology: str | None, reason: str) -> ScanResult:
    return ScanResult(
        raw=raw,
        text=text,
        symbology=symbology,
        scheme=None,
        valid=False,
        reason=reason,
    )
