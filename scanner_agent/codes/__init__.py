"""Parse one barcode scan into a trace code, or say why it is not one.

The agent accepts three kinds of unit-level trace codes found on medicine
packs in China:

* ``cn20``: the 20-digit drug trace code (码上放心 / 药品电子监管码),
* ``gs1``: GS1 data with a GTIN (AI 01) and a serial number (AI 21), as an
  element string (behind ``]d2``, ``]C1``, ``]Q3``, ``]e0``, ``]J1`` or bare),
  as bracketed ``(01)…(21)…`` text or as a GS1 Digital Link URI, every form
  judged by one validation against GS1's Barcode Syntax Dictionary,
* ``ma``: an MA code (IDcode), ``MA.156.…``.

Everything else (a plain EAN-13, noise, an empty read) comes back as an
invalid :class:`ScanResult` with a short reason; :func:`parse_scan` never
raises, so the reader loop needs no ``try``.

>>> r = parse_scan(b"]C081234567890123456789\\r\\n")
>>> r.scheme, r.valid, r.symbology, r.code
(<Scheme.CN20: 'cn20'>, True, ']C0', '81234567890123456789')
>>> r.product, r.serial
('8123456', '789012345')

GS1 element strings and Digital Link URIs of the same data store one code:

>>> es = parse_scan("]d2010950600013435217250600104711\\x1d21ABC")
>>> es.code
'(01)09506000134352(17)250600(10)4711(21)ABC'
>>> es.expiry
datetime.date(2025, 6, 30)
>>> dl = parse_scan("https://id.gs1.org/01/09506000134352/10/4711/21/ABC?17=250600")
>>> dl.code == es.code
True

The stored code is unambiguous: a ``(`` inside a value is written ``\\(``
(GS1's Syntax Engine convention), and the code parses back to the same data:

>>> serial = parse_scan("]d20109506000134352" "21SN1(91)X")
>>> serial.code
'(01)09506000134352(21)SN1\\\\(91)X'
>>> parse_scan("]d20109506000134352" "21SN1\\x1d91X").code
'(01)09506000134352(21)SN1(91)X'
>>> parse_gs1(serial.code).elements
(('01', '09506000134352'), ('21', 'SN1(91)X'))
>>> gs1_code_problem(serial.code) is None
True

Rejected scans carry a reason for the bad-read display:

>>> parse_scan("9506000134352").reason
'a product barcode, not a trace code'
>>> parse_scan("(01)09506000134352(17)(21)ABC").reason
'malformed gs1 code: ai (17): 0 characters, needs 6 digits'
>>> parse_scan("\\r\\n").reason
'empty scan'
"""

from __future__ import annotations

from scanner_agent.codes._gs1 import Gs1Data, gs1_code_problem, parse_gs1
from scanner_agent.codes._parser import MAX_SCAN_CHARS, parse_many, parse_scan
from scanner_agent.codes._result import ScanResult, Scheme

__all__ = [
    "MAX_SCAN_CHARS",
    "Gs1Data",
    "ScanResult",
    "Scheme",
    "gs1_code_problem",
    "parse_gs1",
    "parse_many",
    "parse_scan",
]
