"""Which read to keep when two reads of one symbol disagree: the misread rules.

The frame decoder asks zxing-cpp and ZBar (and retry passes) about the same
frame and reports every code any of them read, except a read that one of these
rules shows to be a misread.  Two reads *conflict* when they have the same
format family, different text, and one's box lies mostly inside the other's:
they are two readings of one symbol, and at most one is right.  The rules are
tried in this order, and the first that separates the two decides:

``check-digit``
    A GS1 read (``]C1``, ``]d2``, ``]Q3``, ``]e0``) whose GTIN (AI 01 or 02) has
    a wrong check digit loses to one whose GTIN is right.
``charset``
    ZBar returns text only, re-encoded from the symbol's bytes with a guessed
    character set (Shift-JIS read as GB 18030, ``\\`` shown as ``¥``), and it
    ignores Code 128's FNC4 (extended ASCII).  A ZBar read whose text is the
    zxing-cpp read's bytes under some character set, or its text with the high
    bit of each character cleared, is the same symbol: zxing-cpp's text is
    kept, since it applies the symbol's ECI or the standard's default.
``short-read``
    A linear read spanning less than three quarters of the other read's length along
    the bars decoded part of the symbol only (ZBar does this on worn EAN-13: half a
    symbol, a wrong number with a right check digit).
``agreement``
    A text that both libraries read beats a text that only one of them read.
``line-support``
    ZBar says on how many scan lines it decoded the same text; zxing-cpp does not.
    Between a ZBar-only and a zxing-cpp-only read of one linear symbol, ZBar's wins when those
    lines number at least a quarter of the symbol's extent across the bars, and loses
    when fewer: on 3,000 worn EAN-13 photos every ZBar misread had under 0.15 of it
    and every right ZBar read that contradicted zxing-cpp over 0.4.
``outvoted``
    Between two reads of one library (zxing-cpp's passes, or two matrix-code reads
    by different libraries), more passes (binarizers, scales, inversion) read the
    other text.  The decoder runs its retry passes on such a symbol before deciding.
``thin-read``
    A linear read lying along another read of the same symbol with less than a
    quarter of its extent across the bars came from a few scan lines (zxing-cpp
    does this on worn EAN-13: ``7034759003930`` beside ``5030159003930``); the
    decoder's retry passes run on such a symbol first.

A conflict no rule separates keeps both reads (the camera's ``confirm_frames``
is the guard there).  Every rejection is reported with its rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from drivers.symbols import (
    LINEAR,
    Rejection,
    Symbol,
    bounding_box,
    length,
    overlap,
    same_line,
    symbol_box,
    thickness,
)

RULES = (
    "check-digit",
    "charset",
    "short-read",
    "agreement",
    "line-support",
    "outvoted",
    "thin-read",
)
"""The names a :class:`~drivers.symbols.Rejection` may give, in the order they are tried."""

GS1_IDENTIFIERS = ("]C1", "]d2", "]Q3", "]e0", "]J1")
_FAMILY = {"UPCA": "EAN13", "EAN13": "EAN13"}
_CHARSETS = ("shift_jis", "cp932", "euc_jp", "gb18030", "big5", "euc_kr", "iso8859_1", "utf-8")
"""Character sets ZBar may have guessed (its QR decoder tries SJIS, then UTF-8, then others)."""
WEAK_LINEAR = frozenset({"Codabar", "Code39", "EAN8", "EAN13", "ITF", "UPCA", "UPCE"})
"""Linear formats whose only protection is a single check digit (or none): a wrong read
passes it one time in ten, so each such read gets a second opinion."""


@dataclass
class _Group:
    """Every read of one text of one symbol."""

    first: Symbol
    reads: list[Symbol] = field(default_factory=list)

    @property
    def votes(self) -> int:
        return len({s.decoder for s in self.reads})


def gtin_check_ok(symbol: Symbol) -> bool | None:
    """Whether a GS1 read's leading GTIN (AI 01 or 02) has its right check digit.

    ``None`` when the read is not GS1 or does not start with a GTIN.

    >>> s = Symbol("0109504000059101", b"", "]d2", "DataMatrix", ((0, 0),) * 4, "zxing")
    >>> gtin_check_ok(s)
    True
    """
    text = symbol.text
    if symbol.symbology not in GS1_IDENTIFIERS or text[:2] not in ("01", "02"):
        return None
    gtin = text[2:16]
    if len(gtin) != 14 or not gtin.isdigit():
        return False
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(gtin[:13]))
    return (10 - total % 10) % 10 == int(gtin[13])


def zbar_transcoding(zbar: Symbol, zxing: Symbol) -> bool:
    """ZBar's text is zxing-cpp's bytes under another character set, or without FNC4."""
    raw = zxing.raw or zxing.payload
    for charset in _CHARSETS:
        try:
            if zbar.text.encode(charset) == raw:
                return True
        except UnicodeError:
            continue
    return (
        zxing.format == "Code128"
        and len(zbar.text) == len(zxing.text)
        and all(chr(ord(a) & 0x7F) == b for a, b in zip(zxing.text, zbar.text, strict=True))
    )


def conflicting(a: Symbol, b: Symbol) -> bool:
    """Two reads of one symbol with different text.

    Two matrix-code reads by the same library are two symbols (a "double QR" nests
    one in the other): Reed-Solomon makes a second, wrong reading of one symbol by
    the same decoder all but impossible.  Linear reads also conflict when they lie
    along the same line (a read from a few scan lines has a box beside the other's).
    """
    if a.text == b.text or _FAMILY.get(a.format, a.format) != _FAMILY.get(b.format, b.format):
        return False
    if a.format not in LINEAR and a.library == b.library:
        return False
    if a.format not in LINEAR:
        return overlap(bounding_box(a.position), bounding_box(b.position)) >= 0.5
    return (
        overlap(bounding_box(a.position), symbol_box(b)) >= 0.9
        or overlap(bounding_box(b.position), symbol_box(a)) >= 0.9
    )


def _loser(a: _Group, b: _Group) -> tuple[_Group, str] | None:
    """The group a rule shows to be the misread, and the rule; ``None`` if none does."""
    ca, cb = gtin_check_ok(a.first), gtin_check_ok(b.first)
    if ca is not None and cb is not None and ca != cb:
        return (a if not ca else b), "check-digit"
    for zb, zx in ((a, b), (b, a)):
        zbar = [s for s in zb.reads if s.library == "pyzbar"]
        zxing = [s for s in zx.reads if s.library == "zxing"]
        if zbar and len(zbar) == len(zb.reads) and zxing and zbar_transcoding(zbar[0], zxing[0]):
            return zb, "charset"
    if a.first.format in LINEAR and b.first.format in LINEAR:
        decided = _linear_loser(a, b)
        if decided is not None:
            return decided
    if a.first.format not in LINEAR and a.votes != b.votes:
        return (a if a.votes < b.votes else b), "outvoted"
    return None


def _linear_loser(a: _Group, b: _Group) -> tuple[_Group, str] | None:
    """The short-read, agreement, line-support, outvoted and thin-read rules, in order."""
    along = max(a.first, b.first, key=lambda s: length(s, s))
    la = max(length(s, along) for s in a.reads)
    lb = max(length(s, along) for s in b.reads)
    if la < 0.75 * lb:
        return a, "short-read"
    if lb < 0.75 * la:
        return b, "short-read"
    ta = max(thickness(s) for s in a.reads)
    tb = max(thickness(s) for s in b.reads)
    libraries_a = {s.library for s in a.reads}
    libraries_b = {s.library for s in b.reads}
    if len(libraries_a) != len(libraries_b):
        return (a if len(libraries_a) < len(libraries_b) else b), "agreement"
    if len(libraries_a) == 1 and libraries_a != libraries_b:
        zb, zx = (a, b) if libraries_a == {"pyzbar"} else (b, a)
        support = max(s.lines for s in zb.reads) / max(ta, tb, 1.0)
        return (zx, "line-support") if support >= 0.25 else (zb, "line-support")
    if a.votes != b.votes:
        return (a if a.votes < b.votes else b), "outvoted"
    if ta < 0.25 * tb and same_line(a.first, b.first):
        return a, "thin-read"
    if tb < 0.25 * ta and same_line(b.first, a.first):
        return b, "thin-read"
    return None


def merge(reads: Sequence[Symbol]) -> tuple[list[Symbol], list[Rejection], list[Symbol]]:
    """Every distinct code in ``reads``, less the misreads the rules show.

    Returns the kept symbols (first reading of each, in order), the rejections, and
    the reads of conflicts that no rule settled (both kept) or that only the number of
    passes or the read's thickness did: a caller may look again with more passes.
    """
    groups: dict[tuple[str, str], _Group] = {}
    for s in reads:
        key = (_FAMILY.get(s.format, s.format), s.text)
        group = groups.get(key)
        if group is not None and overlap(symbol_box(group.first), bounding_box(s.position)) == 0:
            key = (key[0], f"{s.text}\0{len(groups)}")  # the same text on another symbol
            group = None
        if group is None:
            group = groups[key] = _Group(s)
        group.reads.append(s)
    lost: dict[int, Rejection] = {}
    unsettled: list[Symbol] = []
    ordered = list(groups.values())
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if id(a) in lost or id(b) in lost or not conflicting(a.first, b.first):
                continue
            decided = _loser(a, b)
            if decided is None:
                unsettled += [a.first, b.first]
                continue
            loser, rule = decided
            winner = b if loser is a else a
            if rule in ("outvoted", "thin-read"):
                unsettled += [a.first, b.first]  # settled on thin evidence: worth a look
            lost[id(loser)] = Rejection(loser.first, rule, winner.first)
    kept = [g.first for g in ordered if id(g) not in lost]
    return kept, list(lost.values()), unsettled
