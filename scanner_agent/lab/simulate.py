"""Realistic simulated scans for the demo, tests and benchmarks.

cn20 codes use a handful of 7-digit product codes (as a warehouse sees a few
products in many units); GS1 codes are GS1 DataMatrix element strings with
valid GTIN check digits, expiry, batch and serial, sent with the ``]d2``
identifier and GS separators as a real 2D scanner in that mode would.  The
invalid kinds are the mistakes seen at a dock: a retail EAN-13 scanned by
accident, a truncated code, a mistyped GTIN, a smudged read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

GS = "\x1d"


def gtin_check_digit(body: str) -> str:
    """GS1 mod-10 check digit for the digits in ``body`` (without the check digit)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class SimScan:
    """One simulated scan and what the agent should make of it."""

    line: str
    kind: str
    """``cn20``, ``gs1``, ``repeat``, or ``invalid:<what>``."""


def cn20_code(rng: random.Random, product: str) -> str:
    """A 20-digit trace code: 7-digit product, 9-digit serial, 4 check digits."""
    return product + f"{rng.randrange(10**9):09d}" + f"{rng.randrange(10**4):04d}"


def gs1_code(rng: random.Random, gtin: str) -> str:
    """A GS1 DataMatrix element string with ``]d2`` and GS separators."""
    expiry = (
        f"{rng.randrange(26, 30):02d}{rng.randrange(1, 13):02d}{rng.choice(['00', '15', '28'])}"
    )
    batch = f"B{rng.randrange(10**5):05d}"
    serial = f"{rng.randrange(10**10):010d}"
    return f"]d201{gtin}17{expiry}10{batch}{GS}21{serial}"


def simulate(
    count: int, *, seed: int = 7, invalid_every: int = 15, repeat_every: int = 20
) -> list[SimScan]:
    """``count`` scans: mostly valid cn20 and GS1, some invalid, some repeated."""
    rng = random.Random(seed)
    products = ["8" + f"{rng.randrange(10**6):06d}" for _ in range(6)]
    gtins = []
    for _ in range(4):
        body = "0" + "69" + f"{rng.randrange(10**10):010d}"
        gtins.append(body + gtin_check_digit(body))
    out: list[SimScan] = []
    accepted: list[str] = []
    for i in range(1, count + 1):
        if i % invalid_every == 0:
            kind, line = _invalid(rng, i)
            out.append(SimScan(line, f"invalid:{kind}"))
        elif i % repeat_every == 0 and accepted:
            out.append(SimScan(rng.choice(accepted), "repeat"))
        elif rng.random() < 0.65:
            line = cn20_code(rng, rng.choice(products))
            accepted.append(line)
            out.append(SimScan(line, "cn20"))
        else:
            line = gs1_code(rng, rng.choice(gtins))
            accepted.append(line)
            out.append(SimScan(line, "gs1"))
    return out


def _invalid(rng: random.Random, i: int) -> tuple[str, str]:
    choice = i // 15 % 4
    if choice == 0:
        body = "690" + f"{rng.randrange(10**9):09d}"
        return "ean13", body + gtin_check_digit(body)
    if choice == 1:
        return "short", "8" + f"{rng.randrange(10**18):018d}"
    if choice == 2:
        body = "0690" + f"{rng.randrange(10**9):09d}"
        wrong = str((int(gtin_check_digit(body)) + 1) % 10)
        return "check-digit", f"]d201{body}{wrong}21{rng.randrange(10**8):08d}"
    return "garbage", "#?" + "".join(rng.choice("abcXYZ!*") for _ in range(6))
