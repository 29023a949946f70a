"""The GS1 Digital Link URI: ``https://id.gs1.org/01/…/21/…?17=…``.

The path ends in a primary key and its qualifiers in the order GS1's dictionary gives
(``dlpkey``); numeric query parameters are AIs allowed as attributes.  Any domain is
accepted on input; :data:`DL_STEM` is the one written.  Splitting only reads the form;
:func:`scanner_agent.codes._gs1.validate` judges what it read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import unquote_to_bytes

from scanner_agent.codes._gs1_syntax import AI_TABLE
from scanner_agent.codes._gs1_text import INVALID, Element, describe, snippet, too_long

MAX_DIGITAL_LINK: Final = 2953
"""Longest GS1 Digital Link URI: a QR Code (version 40-L) holds at most 2,953 bytes."""

DL_STEM: Final = "https://id.gs1.org"
"""The canonical Digital Link domain; any domain is accepted on input."""

DIGITAL_LINK = re.compile(r"https?://", re.IGNORECASE)
_SCHEME = re.compile(r"(?:https?|HTTPS?)://")

_URI_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
"""Characters a URI may hold (RFC 3986), as GS1's Syntax Engine checks them."""
_BAD_DOMAIN_CHARS: Final = frozenset("_~?#@!$&'()*+,;=%")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def looks_like_digital_link(text: str) -> bool:
    """Whether the data is a web address, the only form a Digital Link takes."""
    return DIGITAL_LINK.match(text) is not None


def _uri_unescape(raw: str, ai: str, *, query: bool) -> str:
    """Percent-decode a Digital Link value (``+`` is a space in the query); raises ValueError."""
    if query and "+" in raw:
        raw = raw.replace("+", " ")
    if "%" not in raw:
        return raw
    bad = _BAD_ESCAPE.search(raw)
    if bad:
        msg = f"ai ({ai}): bad percent-escape {raw[bad.start() : bad.start() + 3]!r}"
        raise ValueError(msg)
    try:
        value = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        msg = f"ai ({ai}): percent-escapes are not utf-8"
        raise ValueError(msg) from None
    if "\x00" in value:
        msg = f"ai ({ai}): a percent-escaped NUL"
        raise ValueError(msg)
    return value


def _dl_root(segments: list[str]) -> int | str:
    """Where the AI pairs of a Digital Link path start: the rightmost primary key whose
    tail is all ``AI/value`` pairs (what precedes it is the stem); or the reason."""
    keys = [i for i, s in enumerate(segments) if s in AI_TABLE and AI_TABLE[s].dl_sequences]
    if not keys:
        return "digital link has no gs1 primary key in its path"
    for i in reversed(keys):
        tail = segments[i:]
        if len(tail) % 2 == 0 and all(tail[j] in AI_TABLE for j in range(0, len(tail), 2)):
            return i
    tail = segments[keys[-1] :]
    for j in range(0, len(tail), 2):
        if tail[j] not in AI_TABLE or j + 1 == len(tail):
            after = f"/{tail[j - 2]}/{tail[j - 1]}" if j else ""
            if tail[j] in AI_TABLE:
                return f"digital link: /{tail[j]}/ has no value"
            if not tail[j]:
                return f"digital link: trailing '/' after {after}"
            return f"digital link: trailing data {snippet(tail[j])} after {after}"
    return "digital link has no gs1 primary key in its path"  # pragma: no cover


def split_digital_link(text: str) -> list[Element] | str:
    """The elements of a GS1 Digital Link URI, by GS1's rules, or the reason.

    The path ends in a primary key and its qualifiers in the order the
    dictionary gives (``dlpkey``); numeric query parameters are AIs allowed
    as attributes (flag ``?``), each once, never empty, none that belongs in
    the path. Other query parameters and a fragment carry no GS1 data and are
    ignored, as the Digital Link standard says.
    """
    n = len(text)
    if n > MAX_DIGITAL_LINK:
        return too_long(n, MAX_DIGITAL_LINK)
    scheme = _SCHEME.match(text)
    if scheme is None:
        return f"{INVALID}digital link must start with http:// or https://"
    rest = text[scheme.end() :].partition("#")[0]
    before_query, _, query = rest.partition("?")
    domain, slash, path = before_query.partition("/")
    if not domain or not slash:
        return f"{INVALID}digital link has no domain and path"
    for char in before_query:
        if char not in _URI_CHARS:
            return f"{INVALID}digital link: {describe(char)} not allowed in a uri"
    for char in domain:
        if char in _BAD_DOMAIN_CHARS:
            return f"{INVALID}digital link: {describe(char)} not allowed in the domain"
    segments = path.split("/")
    root = _dl_root(segments)
    if isinstance(root, str):
        return INVALID + root
    elements: list[Element] = []
    try:
        for j in range(root, len(segments), 2):
            ai, raw = segments[j], segments[j + 1]
            if not raw:
                return f"{INVALID}digital link: /{ai}/ has no value"
            elements.append((ai, _uri_unescape(raw, ai, query=False)))
        path_ais = tuple(ai for ai, _ in elements)
        key = AI_TABLE[path_ais[0]]
        if path_ais not in key.dl_sequences:
            shown = "/".join(path_ais)
            return f"{INVALID}digital link: path {shown} is not a key with its qualifiers in order (dlpkey)"
        seen = set(path_ais)
        for param in query.split("&") if query else ():
            name, eq, raw = param.partition("=")
            if not (name.isdigit() and name.isascii()):
                continue  # not an AI: no GS1 data
            if not raw:
                return f"{INVALID}digital link: ?{name}{eq} has no value"
            if name not in AI_TABLE:
                return f"{INVALID}digital link: unknown ai ({name}) in the query"
            if not AI_TABLE[name].dl_attribute:
                return f"{INVALID}digital link: ai ({name}) is not allowed in the query"
            if name in seen:
                return f"{INVALID}digital link: ai ({name}) given twice"
            for char in raw:
                if char not in _URI_CHARS:
                    return f"{INVALID}digital link: {describe(char)} not allowed in a uri"
            for j in range(1, len(path_ais) + 1):
                if (*path_ais[:j], name, *path_ais[j:]) in key.dl_sequences:
                    return f"{INVALID}digital link: ai ({name}) belongs in the path"
            seen.add(name)
            elements.append((name, _uri_unescape(raw, name, query=True)))
    except ValueError as exc:
        return f"{INVALID}digital link: {exc}"
    return elements


def write_digital_link(elements: Sequence[Element], stem: str = DL_STEM) -> str | None:
    """A GS1 Digital Link URI of valid elements (in canonical order), or None when GS1's
    rules allow none.

    The path holds the first primary key and the most qualifiers it can
    take; every other AI must be one allowed as a query attribute.
    """
    present = {ai for ai, _ in elements}
    key = next((ai for ai, _ in elements if AI_TABLE[ai].dl_sequences), None)
    if key is None:
        return None
    path = max(
        (seq for seq in AI_TABLE[key].dl_sequences if present.issuperset(seq)),
        key=lambda seq: (len(seq), seq),
    )
    values = dict(elements)
    out = [stem.rstrip("/")]
    out.extend(f"/{ai}/{_uri_escape(values[ai], query=False)}" for ai in path)
    query = []
    for want_fixed in (True, False):
        for ai, value in elements:
            entry = AI_TABLE[ai]
            if ai in path or entry.fixed is not want_fixed:
                continue
            if not entry.dl_attribute:
                return None
            query.append(f"{ai}={_uri_escape(value, query=True)}")
    if query:
        out.append("?" + "&".join(query))
    return "".join(out)


def _uri_escape(value: str, *, query: bool) -> str:
    out = []
    for char in value:
        if char in _UNRESERVED:
            out.append(char)
        elif char == " " and query:
            out.append("+")
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)
