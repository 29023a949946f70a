"""The content checks ("linters") GS1's Syntax Dictionary names for AI components.

Each linter takes one component's text, already known to have the right
length and character set, and returns what is wrong with it in a few words,
or None. The names and rules are those of GS1's Barcode Syntax Tests, whose
reference implementation is the C code of the GS1 Barcode Syntax Engine
(``gs1encoders``, Apache-2.0, ``src/c-lib/syntax/lint_*.c``); this is a
re-implementation in Python from that description, not a copy.

Tables come from where they are kept: ISO 3166-1 country codes and ISO 4217
currency codes from pycountry (the Debian iso-codes data, kept up to date
there), loaded on first use. Two small GS1 code lists have no such home and
are written out here with their source: the AIDC media types (GS1 General
Specifications, table "AIDC media type values") and the package types (GS1's
PackageTypeCode code list, UN/ECE Recommendation 21 extended by GS1).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

CSET82: Final = (
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
"""GS1 AI encodable character set 82, in the order of its values (the csumalpha weights)."""
CSET39: Final = "#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""GS1 AI encodable character set 39."""
CSET64: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
"""GS1 AI encodable character set 64 (file-safe, URI-safe base64); ``=`` may pad it."""
CSET32: Final = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
"""The alphabet of the csumalpha check character pair."""

GCP_MIN_LENGTH: Final = 4
"""The shortest GS1 Company Prefix has four digits."""

_PRIMES: Final = (
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
    97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191,
    193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269, 271, 277, 281, 283, 293,
    307, 311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379, 383, 389, 397, 401, 409, 419,
    421, 431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503, 509,
)  # fmt: skip
"""Weights of the csumalpha check pair, rightmost data character first."""

MEDIA_TYPES: Final = frozenset(
    [f"{n:02d}" for n in range(1, 11)] + [f"{n:02d}" for n in range(80, 100)]
)
"""AIDC media types (GS1 General Specifications): 01-10 assigned, 80-99 for local use."""

PACKAGE_TYPES: Final = frozenset(
    """
    1A 1B 1D 1F 1G 1W 200 201 202 203 204 205 206 210 211 212 2C 3A 3H 43 44 4A 4B 4C 4D 4F 4G
    4H 5H 5L 5M 6H 6P 7A 7B 8 8A 8B 8C 9 AA AB AC AD AF AG AH AI AJ AL AM AP APE AT AV B4 BB BC
    BD BE BF BG BGE BH BI BJ BK BL BM BME BN BO BP BQ BR BRI BS BT BU BV BW BX BY BZ CA CB CBL
    CC CCE CD CE CF CG CH CI CJ CK CL CM CN CO CP CQ CR CS CT CU CV CW CX CY CZ DA DB DC DG DH
    DI DJ DK DL DM DN DP DPE DR DS DT DU DV DW DX DY E1 E2 E3 EC ED EE EF EG EH EI EN FB FC FD
    FE FI FL FO FOB FP FPE FR FT FW FX GB GI GL GR GU GY GZ HA HB HC HG HN HR IA IB IC ID IE IF
    IG IH IK IL IN IZ JB JC JG JR JT JY KG KI LAB LE LG LT LU LV LZ MA MB MC ME MPE MR MS MT MW
    MX NA NE NF NG NS NT NU NV OA OB OC OD OE OF OK OPE OT OU P2 PA PAE PB PC PD PE PF PG PH PI
    PJ PK PL PLP PN PO POP PP PPE PR PT PU PUE PV PX PY PZ QA QB QC QD QF QG QH QJ QK QL QM QN
    QP QQ QR QS RB1 RB2 RB3 RCB RD RG RJ RK RL RO RT RZ S1 SA SB SC SD SE SEC SH SI SK SL SM SO
    SP SS ST STL SU SV SW SX SY SZ T1 TB TC TD TE TEV TG THE TI TK TL TN TO TR TRE TS TT TTE TU
    TV TW TWE TY TZ UC UN UUE VA VG VI VK VL VN VO VP VQ VR VS VY WA WB WC WD WF WG WH WJ WK WL
    WM WN WP WQ WR WRP WS WT WU WV WW WX WY WZ X11 X12 X15 X16 X17 X18 X19 X20 X3 XA XB XC XD
    XF XG XH XJ XK YA YB YC YD YF YG YH YJ YK YL YM YN YP YQ YR YS YT YV YW YX YY YZ ZA ZB ZC
    ZD ZF ZG ZH ZJ ZK ZL ZM ZN ZP ZQ ZR ZS ZT ZU ZV ZW ZX ZY ZZ
    """.split()  # noqa: SIM905 - the code list as GS1 prints it, not 400 quoted strings
)
"""GS1 PackageTypeCode code list (UN/ECE Recommendation 21 alphanumeric codes plus GS1's own)."""

Linter = Callable[[str], "str | None"]


@functools.cache
def _countries_numeric() -> frozenset[str]:
    import pycountry  # its JSON is read only when an AI that names a country is scanned

    return frozenset(c.numeric for c in pycountry.countries)


@functools.cache
def _countries_alpha2() -> frozenset[str]:
    import pycountry

    return frozenset(c.alpha_2 for c in pycountry.countries)


@functools.cache
def _currencies_numeric() -> frozenset[str]:
    import pycountry

    return frozenset(c.numeric for c in pycountry.currencies)


def gs1_check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit for ``digits`` (the data without its check digit)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        total += (ord(char) - 48) * (3 if index % 2 == 0 else 1)
    return str(-total % 10)


def csum(data: str) -> str | None:
    """The last digit is the GS1 mod-10 check digit of the others."""
    if not data:
        return "no check digit"
    expected = gs1_check_digit(data[:-1])
    if data[-1] != expected:
        return f"wrong check digit: expected {expected}, got {data[-1]}"
    return None


def csumalpha(data: str) -> str | None:
    """The last two characters are the GS1 alphanumeric check character pair (CSET 32)."""
    if len(data) < 2:
        return "too short for a check character pair"
    if len(data) - 2 > len(_PRIMES):
        return "too long for a check character pair"
    pair = data[-2:]
    if pair[0] not in CSET32 or pair[1] not in CSET32:
        return f"check characters {pair!r} are not from cset 32"
    body = data[:-2]
    total = 0
    for weight, char in zip(_PRIMES, reversed(body), strict=False):
        total += CSET82.index(char) * weight
    total %= 1021
    expected = CSET32[total >> 5] + CSET32[total & 31]
    if pair != expected:
        return f"wrong check character pair: expected {expected}, got {pair}"
    return None


def gcppos1(data: str) -> str | None:
    """Starts with a GS1 Company Prefix: at least its four leading digits."""
    if len(data) < GCP_MIN_LENGTH:
        return "too short for a gs1 company prefix"
    if not data[:GCP_MIN_LENGTH].isdigit() or not data[:GCP_MIN_LENGTH].isascii():
        return "does not start with a gs1 company prefix (4 digits)"
    return None


def gcppos2(data: str) -> str | None:
    """A GS1 Company Prefix from the second character on (after an indicator digit)."""
    if len(data) < 2:
        return "too short for a gs1 company prefix"
    return gcppos1(data[1:])


def hasnondigit(data: str) -> str | None:
    if data.isascii() and data.isdigit():
        return "needs a character that is not a digit"
    return None


def _range(data: str, what: str, low: int, high: int) -> str | None:
    if len(data) != 2 or not data.isdigit() or not low <= int(data) <= high:
        return f"no {what} {data}"
    return None


def hh(data: str) -> str | None:
    return _range(data, "hour", 0, 23)


def mi(data: str) -> str | None:
    return _range(data, "minute", 0, 59)


def ss(data: str) -> str | None:
    return _range(data, "second", 0, 59)


def hhmi(data: str) -> str | None:
    return hh(data[:2]) or mi(data[2:])


def hyphen(data: str) -> str | None:
    if data.strip("-"):
        return "only '-' allowed"
    return None


def iban(data: str) -> str | None:
    """An International Bank Account Number (ISO 13616): country, mod-97 check, 11-34 characters."""
    if len(data) < 4:
        return "too short for an iban"
    if data[:2] not in _countries_alpha2():
        return f"iban country {data[:2]!r} is not an iso 3166 country code"
    if len(data) > 34:
        return "too long for an iban"
    if len(data) <= 10:
        return "too short for an iban"
    total = 0
    for char in data[4:] + data[:4]:
        if "0" <= char <= "9":
            total = (total * 10 + ord(char) - 48) % 97
        elif "A" <= char <= "Z":
            total = (total * 100 + ord(char) - 55) % 97
        else:
            return f"{char!r} is not allowed in an iban"
    if total != 1:
        return "wrong iban check digits"
    return None


def importeridx(data: str) -> str | None:
    if len(data) != 1 or not (data.isascii() and (data.isalnum() or data in "-_")):
        return "not an importer index (one of - _ 0-9 A-Z a-z)"
    return None


def iso3166(data: str) -> str | None:
    if data not in _countries_numeric():
        return f"{data} is not an iso 3166 country code"
    return None


def iso3166999(data: str) -> str | None:
    if data == "999":
        return None
    return iso3166(data)


def iso3166alpha2(data: str) -> str | None:
    if data not in _countries_alpha2():
        return f"{data} is not an iso 3166 alpha-2 country code"
    return None


def iso4217(data: str) -> str | None:
    if data not in _currencies_numeric():
        return f"{data} is not an iso 4217 currency code"
    return None


def iso5218(data: str) -> str | None:
    if data not in ("0", "1", "2", "9"):
        return f"{data} is not an iso 5218 sex code (0, 1, 2 or 9)"
    return None


def _bounded(data: str, what: str, high: int) -> str | None:
    if not data.isdigit() or int(data) > high:
        return f"{data} is not a {what} (at most {high})"
    return None


def latitude(data: str) -> str | None:
    return _bounded(data, "latitude", 1800000000)


def longitude(data: str) -> str | None:
    return _bounded(data, "longitude", 3600000000)


def mediatype(data: str) -> str | None:
    if data not in MEDIA_TYPES:
        return f"{data} is not an aidc media type"
    return None


def nonzero(data: str) -> str | None:
    if not data.strip("0"):
        return "must not be zero"
    return None


def nozeroprefix(data: str) -> str | None:
    if data.startswith("0"):
        return "must not start with 0"
    return None


def packagetype(data: str) -> str | None:
    if data not in PACKAGE_TYPES:
        return f"{data} is not a package type code"
    return None


def pcenc(data: str) -> str | None:
    """Every ``%`` starts a percent-escape: two hex digits follow (RFC 3986, 2.1)."""
    pos = data.find("%")
    while pos != -1:
        pair = data[pos + 1 : pos + 3]
        if len(pair) != 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            return f"bad percent-escape at {data[pos : pos + 3]!r}"
        pos = data.find("%", pos + 3)
    return None


def pieceoftotal(data: str) -> str | None:
    """A piece number and the total, each half the digits: 1 <= piece <= total."""
    half = len(data) // 2
    if len(data) % 2 or not data.isdigit():
        return "not a piece number and total of equal length"
    piece, total = int(data[:half]), int(data[half:])
    if piece == 0:
        return "piece number is zero"
    if total == 0:
        return "total is zero"
    if piece > total:
        return f"piece {piece} of {total}"
    return None


def posinseqslash(data: str) -> str | None:
    """``<position>/<end>``, both without leading zeros, the position not past the end."""
    position, slash, end = data.partition("/")
    if not (
        slash and position.isdigit() and end.isdigit() and position.isascii() and end.isascii()
    ):
        return "not <position>/<end>"
    if position[0] == "0" or end[0] == "0":
        return "zero or a leading zero in <position>/<end>"
    if int(position) > int(end):
        return f"position {position} is past the end {end}"
    return None


def winding(data: str) -> str | None:
    if data not in ("0", "1", "9"):
        return f"{data} is not a winding direction (0, 1 or 9)"
    return None


def yesno(data: str) -> str | None:
    if data not in ("0", "1"):
        return f"{data} is not 0 or 1"
    return None


def zero(data: str) -> str | None:
    if data != "0":
        return "must be 0"
    return None


_DAYS: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _date(year: str, month: str, day: str, *, leap: bool, day_zero: bool) -> str | None:
    if not (year + month + day).isdigit() or not (year + month + day).isascii():
        return "not a date"
    m = int(month)
    if not 1 <= m <= 12:
        return f"no month {month}"
    d = int(day)
    if d == 0 and day_zero:
        return None
    last = 28 if m == 2 and not leap else _DAYS[m - 1]
    if not 1 <= d <= last:
        return f"no day {day} in month {month}"
    return None


def _date6(data: str, *, day_zero: bool) -> str | None:
    if len(data) != 6:
        return "not a date (YYMMDD)"
    # A two-digit year gives no century; like GS1's reference, every year divisible by 4 is leap.
    return _date(
        data[:2],
        data[2:4],
        data[4:],
        leap=data[:2].isdigit() and int(data[:2]) % 4 == 0,
        day_zero=day_zero,
    )


def _date8(data: str, *, day_zero: bool) -> str | None:
    if len(data) != 8:
        return "not a date (YYYYMMDD)"
    year = int(data[:4]) if data[:4].isdigit() else 1
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return _date(data[:4], data[4:6], data[6:], leap=leap, day_zero=day_zero)


def yymmd0(data: str) -> str | None:
    """YYMMDD; a day of 00 means the month as a whole."""
    return _date6(data, day_zero=True)


def yymmdd(data: str) -> str | None:
    return _date6(data, day_zero=False)


def yyyymmd0(data: str) -> str | None:
    return _date8(data, day_zero=True)


def yyyymmdd(data: str) -> str | None:
    return _date8(data, day_zero=False)


def _vli(
    data: str, pos: int, low: str, high: str, what: str, extra: int = 0
) -> tuple[int, str | None]:
    """Read a variable-length indicator at ``pos`` and skip the field it announces.

    Returns the position after the field, or what is wrong.
    """
    if pos >= len(data):
        return pos, f"{what}: missing length indicator"
    if not low <= data[pos] <= high:
        return pos, f"{what}: bad length indicator {data[pos]}"
    length = int(data[pos]) + extra
    if len(data) - pos - 1 < length:
        return pos, f"{what}: truncated"
    return pos + 1 + length, None


def _gcp(data: str, pos: int, length: int, what: str) -> str | None:
    problem = gcppos1(data[pos : pos + length])
    return f"{what}: {problem}" if problem else None


def couponposoffer(data: str) -> str | None:
    """AI (8112): the modernised North American positive-offer-file coupon code."""
    if not data.isdigit():
        return "coupon code must be digits"
    if not data:
        return "missing format code"
    if data[0] not in "01":
        return f"bad format code {data[0]}"
    pos, problem = _vli(data, 1, "0", "6", "funder id", extra=6)
    if problem:
        return problem
    if len(data) - pos < 6:
        return "truncated offer code"
    pos += 6
    pos, problem = _vli(data, pos, "0", "9", "serial number", extra=6)
    if problem:
        return problem
    if pos != len(data):
        return "excess data after the serial number"
    return None


def _coupon_purchase(data: str, pos: int, n: str) -> tuple[int, str | None]:
    """A purchase requirement (VLI 1-5), its code (0-4 or 9) and family code (3 digits)."""
    pos, problem = _vli(data, pos, "1", "5", f"{n} purchase requirement")
    if problem:
        return pos, problem
    if pos >= len(data):
        return pos, f"missing {n} purchase requirement code"
    if data[pos] not in "012349":
        return pos, f"bad {n} purchase requirement code {data[pos]}"
    pos += 1
    if len(data) - pos < 3:
        return pos, f"truncated {n} purchase family code"
    return pos + 3, None


def _coupon_gcp(data: str, pos: int, n: str) -> tuple[int, str | None]:
    """A purchase GCP: VLI 0-6 (length + 6) or 9 (none)."""
    if pos >= len(data):
        return pos, f"missing {n} purchase gcp length indicator"
    if data[pos] == "9":
        return pos + 1, None
    start = pos + 1
    pos, problem = _vli(data, pos, "0", "6", f"{n} purchase gcp", extra=6)
    if problem:
        return pos, problem
    return pos, _gcp(data, start, pos - start, f"{n} purchase gcp")


def couponcode(data: str) -> str | None:
    """AI (8110): the North American Coupon Code (NACC) with its optional fields 1-6 and 9."""
    if not data.isdigit():
        return "coupon code must be digits"
    pos, problem = _vli(data, 0, "0", "6", "primary gcp", extra=6)
    if problem:
        return problem
    problem = _gcp(data, 1, pos - 1, "primary gcp")
    if problem:
        return problem
    if len(data) - pos < 6:
        return "truncated offer code"
    pos, problem = _vli(data, pos + 6, "1", "5", "save value")
    if problem:
        return problem
    pos, problem = _coupon_purchase(data, pos, "1st")
    if problem:
        return problem
    expiry: str | None = None
    if pos < len(data) and data[pos] == "1":
        pos += 1
        if pos >= len(data):
            return "missing additional purchase rules code"
        if data[pos] > "3":
            return f"bad additional purchase rules code {data[pos]}"
        pos, problem = _coupon_purchase(data, pos + 1, "2nd")
        if problem:
            return problem
        pos, problem = _coupon_gcp(data, pos, "2nd")
        if problem:
            return problem
    if pos < len(data) and data[pos] == "2":
        pos, problem = _coupon_purchase(data, pos + 1, "3rd")
        if problem:
            return problem
        pos, problem = _coupon_gcp(data, pos, "3rd")
        if problem:
            return problem
    if pos < len(data) and data[pos] == "3":
        expiry = data[pos + 1 : pos + 7]
        if len(expiry) < 6 or yymmdd(expiry):
            return "bad expiration date"
        pos += 7
    if pos < len(data) and data[pos] == "4":
        begins = data[pos + 1 : pos + 7]
        if len(begins) < 6 or yymmdd(begins):
            return "bad start date"
        if expiry is not None and begins > expiry:
            return "expiration date before start date"
        pos += 7
    if pos < len(data) and data[pos] == "5":
        pos, problem = _vli(data, pos + 1, "0", "9", "serial number", extra=6)
        if problem:
            return problem
    if pos < len(data) and data[pos] == "6":
        start = pos + 2
        pos, problem = _vli(data, pos + 1, "1", "7", "retailer gcp/gln", extra=6)
        if problem:
            return problem
        problem = _gcp(data, start, pos - start, "retailer gcp/gln")
        if problem:
            return problem
    if pos < len(data) and data[pos] == "9":
        field = data[pos + 1 : pos + 5]
        if len(field) < 4:
            return "truncated miscellaneous field"
        if field[0] not in "01256":
            return f"bad save value code {field[0]}"
        if field[1] > "2":
            return f"bad save value applies to item {field[1]}"
        if field[3] not in "01":
            return f"bad don't multiply flag {field[3]}"
        pos += 5
    if pos != len(data):
        return "excess data"
    return None


LINTERS: Final[dict[str, Linter]] = {
    "couponcode": couponcode,
    "couponposoffer": couponposoffer,
    "csum": csum,
    "csumalpha": csumalpha,
    "gcppos1": gcppos1,
    "gcppos2": gcppos2,
    "key": gcppos1,  # the name older dictionaries give gcppos1
    "hasnondigit": hasnondigit,
    "hh": hh,
    "hhmi": hhmi,
    "hhmm": hhmi,  # older name
    "hyphen": hyphen,
    "iban": iban,
    "importeridx": importeridx,
    "iso3166": iso3166,
    "iso3166999": iso3166999,
    "iso3166alpha2": iso3166alpha2,
    "iso4217": iso4217,
    "iso5218": iso5218,
    "latitude": latitude,
    "longitude": longitude,
    "mediatype": mediatype,
    "mi": mi,
    "nonzero": nonzero,
    "nozeroprefix": nozeroprefix,
    "packagetype": packagetype,
    "pcenc": pcenc,
    "pieceoftotal": pieceoftotal,
    "posinseqslash": posinseqslash,
    "ss": ss,
    "winding": winding,
    "yesno": yesno,
    "yymmd0": yymmd0,
    "yymmdd": yymmdd,
    "yyyymmd0": yyyymmd0,
    "yyyymmdd": yyyymmdd,
    "zero": zero,
}
"""Every linter by the name the dictionary uses."""
