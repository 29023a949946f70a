"""Parse cost per input form, the worst case, and GS1 conformance counts, against biip.

1. ``cost_us``: microseconds per ``parse_scan`` call for a typical scan of
   each form (cn20; GS1 element string behind ``]d2``; bracketed HRI; Digital
   Link; bare element string), median of ``BENCH_PARSE_RUNS`` timed loops, and
   the same GS1 data through biip (``GS1Message.parse`` / ``parse_hri``,
   ``GS1DigitalLinkURI.parse``), the parser the agent used before.
2. ``worst_us``: the costliest inputs each form allows: a bracketed frame
   with repeated AIs at 512 ... 4,096 bytes (the frame of issue 16 item 2,
   52 ms with biip on the event loop), the longest element string and Digital
   Link the bounds admit, and a 1 MiB frame (refused as too long unparsed).
   ``linear_ratio`` is cost(4,096 B) / cost(512 B) of the repeated-AI frame:
   8 means linear.
3. ``conformance``: hypothesis-generated inputs (the test strategies): valid
   trace codes in every form (each accepted one re-encoded in every form and
   parsed back), and defective bracketed text near a valid code; counts of
   inputs tried, refused, round trips checked, and disagreements with the
   reference trace service's rule (must be 0).

Progress goes to stderr; the last line of stdout is one JSON object. Not part
of the test suite.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_messages import GS1Message

from scanner_agent.codes import Gs1Data, parse_gs1, parse_scan
from scanner_agent.codes._gs1 import NOT_CANONICAL
from scanner_agent.codes._gs1_digital_link import MAX_DIGITAL_LINK
from scanner_agent.codes._gs1_element_string import MAX_ELEMENT_STRING
from scanner_agent.traceserver._protocol import code_problem

RUNS = int(os.environ.get("BENCH_PARSE_RUNS", "7"))
EXAMPLES = int(os.environ.get("BENCH_PARSE_EXAMPLES", "2000"))
GS = "\x1d"
GTIN = "09506000134352"

TYPICAL = {
    "cn20": "81234567890123456789",
    "element_string": f"]d201{GTIN}17250630104711{GS}21ABC123",
    "hri": f"(01){GTIN}(17)250630(10)4711(21)ABC123",
    "digital_link": f"https://id.gs1.org/01/{GTIN}/10/4711/21/ABC123?17=250630",
    "bare_element_string": f"01{GTIN}17250630104711{GS}21ABC123",
}
BIIP: dict[str, Callable[[str], object]] = {
    "element_string": lambda s: GS1Message.parse(s[3:]),
    "hri": GS1Message.parse_hri,
    "digital_link": GS1DigitalLinkURI.parse,
    "bare_element_string": GS1Message.parse,
}


def per_call_us(fn: Callable[[str], object], text: str) -> float:
    """Median microseconds per call over RUNS loops of about 50 ms each."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn(text)
        took = time.perf_counter() - start
        if took > 0.05 or n >= 1 << 20:
            break
        n *= 2
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for _ in range(n):
            fn(text)
        samples.append((time.perf_counter() - start) / n * 1e6)
    return round(statistics.median(samples), 2)


def biip_or_error(fn: Callable[[str], object]) -> Callable[[str], object]:
    def call(text: str) -> object:
        try:
            return fn(text)
        except Exception as exc:  # biip refuses some of these; its cost is still its cost
            return exc

    return call


def repeated_hri(size: int) -> str:
    head = f"(01){GTIN}(21)ABC123"
    unit = "(91)ABCDEFGHIJKLMNOP"
    return (head + unit * size)[:size].rsplit("(", 1)[0]


def worst_cases() -> dict[str, str]:
    es = f"]d201{GTIN}21ABC" + "".join(f"{GS}9{k}" + "Z" * 90 for k in range(1, 10))
    while len(es) + 93 <= MAX_ELEMENT_STRING + 3:
        es += f"{GS}91" + "Z" * 90  # the same AI with the same value again: allowed
    link = f"https://id.gs1.org/01/{GTIN}/21/ABC?17=250630&x="
    link += "a" * (MAX_DIGITAL_LINK - len(link))
    return {
        **{f"hri_repeated_{n}": repeated_hri(n) for n in (512, 1024, 2048, 4096)},
        "element_string_max": es,
        "digital_link_max": link,
        "frame_1mib": "(01)" + "9" * (1 << 20),
    }


def conformance() -> dict[str, object]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.codes.gs1_strategies import GS1_AIMS, bracketed, element_string, trace_elements
    from tests.traceserver.test_gs1_agreement import defective_bracketed

    counts: Counter[str] = Counter()
    for must_stay_zero in ("changed_data", "round_trip_failures", "service_disagrees"):
        counts[must_stay_zero] = 0
    counts["service_refused_an_ack"] = 0
    quiet = settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )

    def check_round_trip(code: str) -> None:
        data = parse_gs1(code)
        assert isinstance(data, Gs1Data)
        forms = {"hri": data.bracketed(), "element_string": "]d2" + data.element_string()}
        forms["bare_element_string"] = data.element_string()
        link = data.digital_link()
        if link is not None:
            forms["digital_link"] = link
        for form, text in forms.items():
            again = parse_scan(text)
            counts[f"round_trip_{form}"] += 1
            if again.code != code:
                counts["round_trip_failures"] += 1

    @quiet
    @given(elements=trace_elements(), aim=st.sampled_from(GS1_AIMS))
    def valid(elements: list[tuple[str, str]], aim: str) -> None:
        data = parse_gs1(bracketed(elements))
        link = data.digital_link() if isinstance(data, Gs1Data) else None
        forms = {"element_string": aim + element_string(elements), "hri": bracketed(elements)}
        if link is not None:
            forms["digital_link"] = link
        for form, text in forms.items():
            result = parse_scan(text)
            counts[f"tried_{form}"] += 1
            if not result.valid:
                counts[f"refused_{form}"] += 1
                continue
            assert result.code is not None
            if dict(parse_gs1(result.code).elements) != dict(elements):  # type: ignore[union-attr]
                counts["changed_data"] += 1
            if code_problem("gs1", result.code) is not None:
                counts["service_refused_an_ack"] += 1
            check_round_trip(result.code)

    @quiet
    @given(text=defective_bracketed())
    def defective(text: str) -> None:
        result = parse_scan(text)
        service = code_problem("gs1", text)
        counts["tried_defective_hri"] += 1
        if result.valid:
            assert result.code is not None
            counts["accepted_defective_hri"] += 1
            if service is not None and service != NOT_CANONICAL + result.code:
                counts["service_disagrees"] += 1
            check_round_trip(result.code)
        else:
            counts["refused_defective_hri"] += 1
            if service != result.reason:
                counts["service_disagrees"] += 1

    valid()
    defective()
    return dict(sorted(counts.items()))


def main() -> None:
    cost = {}
    for form, text in TYPICAL.items():
        assert parse_scan(text).valid, form
        row = {"agent": per_call_us(parse_scan, text)}
        if form in BIIP:
            row["biip"] = per_call_us(biip_or_error(BIIP[form]), text)
        cost[form] = row
        print(f"{form}: {row}", file=sys.stderr)
    worst = {}
    for name, text in worst_cases().items():
        result = parse_scan(text)
        row = {"bytes": len(text), "agent": per_call_us(parse_scan, text), "valid": result.valid}
        if name.startswith("hri"):
            row["biip"] = per_call_us(biip_or_error(GS1Message.parse_hri), text)
        worst[name] = row
        print(f"{name}: {row}", file=sys.stderr)
    linear = round(worst["hri_repeated_4096"]["agent"] / worst["hri_repeated_512"]["agent"], 2)
    counts = conformance()
    print(f"conformance: {counts}", file=sys.stderr)
    print(
        json.dumps(
            {"cost_us": cost, "worst_us": worst, "linear_ratio": linear, "conformance": counts}
        )
    )


if __name__ == "__main__":
    main()
