"""GS1's Barcode Syntax Dictionary, loaded at import: what every Application Identifier holds.

The dictionary (``gs1data/gs1-syntax-dictionary.txt``, Apache-2.0, GS1 AISBL;
``gs1data/NOTICE`` says where it comes from) is the machine-readable AI table
that GS1's own Syntax Engine is built from. Each line gives one AI or a range:

* its *flags*: ``*`` a predefined-length AI that needs no FNC1 separator after
  it in an element string, ``?`` an AI that may be a GS1 Digital Link query
  attribute;
* its *components*, each a character set (``N`` digits, ``X`` CSET 82, ``Y``
  CSET 39, ``Z`` CSET 64), a fixed (``N6``) or variable (``X..20``) length,
  whether it is optional (``[N3]``), and the *linters* that check its content
  (``csum``, ``yymmd0``, ``iso3166`` ...: :mod:`._gs1_linters`);
* its *attributes*: ``req=`` (mandatory associations: each instance needs one
  of its comma-separated alternatives, an alternative being ``+``-joined AIs
  all present), ``ex=`` (AIs it must not appear with), ``dlpkey`` (a Digital
  Link primary key and its ordered qualifiers).

Keeping the table as GS1's data instead of transcribing it means an update is
a file copy, and a linter the code does not know stops the import (a test
loads it) rather than being skipped in silence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Final

from scanner_agent.codes._gs1_linters import LINTERS

DICTIONARY_FILE: Final = "gs1-syntax-dictionary.txt"
"""The data file, in the package directory ``gs1data`` beside its LICENSE and NOTICE."""

CSETS: Final[dict[str, str]] = {
    "N": "numeric",
    "X": "cset 82",
    "Y": "cset 39",
    "Z": "cset 64",
}
"""The dictionary's component types and the names the reasons give them."""

_FLAG_CHARS: Final = frozenset("*!?\"$%&'()+,-./:;<=>@[\\]^_`{|}~")
_COMPONENT = re.compile(r"(\[)?([NXYZ])(?:(\d+)|\.\.(\d+))(\])?((?:,[a-z0-9]+)*)")
_PATTERN = re.compile(r"[0-9]{2,4}|[0-9]{1,3}n{1,3}")


@dataclass(frozen=True, slots=True)
class Component:
    """One part of an AI's value: its character set, length and content checks."""

    cset: str
    """``N``, ``X``, ``Y`` or ``Z``."""
    min_length: int
    max_length: int
    optional: bool
    linters: tuple[tuple[str, Callable[[str], str | None]], ...]
    """``(name, check)`` pairs; a check returns what is wrong, or None."""


@dataclass(frozen=True, slots=True)
class AiEntry:
    """One Application Identifier as the dictionary defines it."""

    ai: str
    fixed: bool
    """Flag ``*``: predefined length, no FNC1 separator needed after it in an element string."""
    dl_attribute: bool
    """Flag ``?``: may be a GS1 Digital Link query parameter."""
    components: tuple[Component, ...]
    req: tuple[tuple[tuple[str, ...], ...], ...]
    """Each ``req=`` attribute: its alternatives, each a group of AI patterns all needed."""
    ex: tuple[str, ...]
    """AI patterns this AI must not appear with (``310n``: any AI 3100-3109)."""
    dl_sequences: frozenset[tuple[str, ...]]
    """For a Digital Link primary key: every valid path, the key first, then
    qualifiers in their order (any may be left out). Empty for other AIs."""
    title: str
    min_length: int
    max_length: int


def _expand(ais: str) -> list[str]:
    """``3100-3105`` -> the six AIs; ``91-99`` -> nine; ``01`` -> itself."""
    if "-" not in ais:
        return [ais]
    first, last = ais.split("-")
    width = len(first)
    return [f"{n:0{width}d}" for n in range(int(first), int(last) + 1)]


def _qualifier_paths(key: str, qualifiers: tuple[str, ...]) -> set[tuple[str, ...]]:
    """The key followed by every ordered subset of ``qualifiers`` (order kept)."""
    paths: set[tuple[str, ...]] = {(key,)}
    for qualifier in qualifiers:
        paths |= {(*path, qualifier) for path in paths}
    return paths


def _parse_component(token: str, ai: str) -> Component:
    match = _COMPONENT.fullmatch(token)
    if match is None or bool(match[1]) != bool(match[5]):
        msg = f"gs1 syntax dictionary: ai {ai}: bad component {token!r}"
        raise ValueError(msg)
    names = [name for name in match[6].split(",") if name]
    checks = []
    for name in names:
        check = LINTERS.get(name)
        if check is None:
            msg = f"gs1 syntax dictionary: ai {ai}: linter {name!r} is not implemented"
            raise ValueError(msg)
        checks.append((name, check))
    fixed = match[3]
    return Component(
        cset=match[2],
        min_length=int(fixed) if fixed else 1,
        max_length=int(fixed or match[4]),
        optional=bool(match[1]),
        linters=tuple(checks),
    )


def _patterns(value: str, ai: str) -> tuple[str, ...]:
    out = tuple(value.split(","))
    for pattern in out:
        for part in pattern.split("+"):
            if _PATTERN.fullmatch(part) is None:
                msg = f"gs1 syntax dictionary: ai {ai}: bad ai pattern {part!r}"
                raise ValueError(msg)
    return out


def _parse_line(line: str) -> list[AiEntry]:
    spec, _, title = line.partition("#")
    tokens = spec.split()
    ais, rest = tokens[0], tokens[1:]
    flags = ""
    if rest and set(rest[0]) <= _FLAG_CHARS:
        flags, rest = rest[0], rest[1:]
    component_tokens = [t for t in rest if _COMPONENT.fullmatch(t)]
    attributes = rest[len(component_tokens) :]
    entries = []
    for ai in _expand(ais):
        components = tuple(_parse_component(t, ai) for t in component_tokens)
        req: list[tuple[tuple[str, ...], ...]] = []
        ex: list[str] = []
        sequences: set[tuple[str, ...]] = set()
        for attribute in attributes:
            key, _, value = attribute.partition("=")
            if key == "req":
                req.append(tuple(tuple(alt.split("+")) for alt in _patterns(value, ai)))
            elif key == "ex":
                ex.extend(_patterns(value, ai))
            elif key == "dlpkey":
                for alternative in value.split("|") if value else [""]:
                    sequences |= _qualifier_paths(ai, tuple(q for q in alternative.split(",") if q))
            else:
                msg = f"gs1 syntax dictionary: ai {ai}: unknown attribute {attribute!r}"
                raise ValueError(msg)
        mandatory = [c for c in components if not c.optional]
        entries.append(
            AiEntry(
                ai=ai,
                fixed="*" in flags,
                dl_attribute="?" in flags,
                components=components,
                req=tuple(req),
                ex=tuple(ex),
                dl_sequences=frozenset(sequences),
                title=title.strip(),
                min_length=sum(c.min_length for c in mandatory),
                max_length=sum(c.max_length for c in components),
            )
        )
    return entries


def load(text: str) -> dict[str, AiEntry]:
    """Parse the dictionary's text into ``{ai: entry}``; raises ValueError on anything unknown.

    Also checks the two properties the parsers rely on: no AI is a prefix of
    another (so an element string names its AIs unambiguously), and a
    predefined-length AI has exactly one length.
    """
    table: dict[str, AiEntry] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for entry in _parse_line(line):
            if entry.ai in table:
                msg = f"gs1 syntax dictionary: ai {entry.ai} defined twice"
                raise ValueError(msg)
            table[entry.ai] = entry
    for ai, entry in table.items():
        for cut in range(2, len(ai)):
            if ai[:cut] in table:
                msg = f"gs1 syntax dictionary: ai {ai[:cut]} is a prefix of ai {ai}"
                raise ValueError(msg)
        if entry.fixed and entry.min_length != entry.max_length:
            msg = f"gs1 syntax dictionary: predefined-length ai {ai} has a variable length"
            raise ValueError(msg)
    return table


def _read() -> str:
    return (
        resources.files("scanner_agent.codes")
        .joinpath("gs1data", DICTIONARY_FILE)
        .read_text("utf-8")
    )


AI_TABLE: Final[dict[str, AiEntry]] = load(_read())
"""Every AI GS1 defines, from the shipped dictionary."""
