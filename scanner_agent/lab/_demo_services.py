"""The demo's stand-ins for the world: the service it syncs to (the reference trace service or a
platform emulator, per protocol) and the bills it opens on the 码上放心 path."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner_agent.daemon import Daemon
from scanner_agent.lab.simulate import SimScan
from scanner_agent.traceserver import TraceServerThread

DEMO_TOKEN = "demo-token-not-secret"  # noqa: S105 - a loopback demo's throwaway token
DEMO_APP_KEY = "demo-app"
DEMO_SECRET = "demo-app-secret-not-secret"  # noqa: S105 - the emulator's throwaway app secret


@dataclass
class Service:
    """The demo's service: its config tables and how to count what it holds."""

    name: str
    url: str
    tables: dict[str, Any]
    held: Callable[[], int]
    bills: Callable[[], dict[str, dict[str, str]]] = dict
    """码上放心: bill number -> the upload's parameters, as the gateway stored them."""


def start_service(
    protocol: str, workdir: Path, unknown: frozenset[str], stack: contextlib.ExitStack
) -> Service:
    """Start the service for ``protocol`` on loopback; its credential in a mode-0600 file."""
    secret = DEMO_SECRET if protocol == "alihealth" else DEMO_TOKEN
    cred = workdir / ("alihealth.secret" if protocol == "alihealth" else "token")
    cred.write_text(secret + "\n")
    cred.chmod(0o600)
    if protocol == "alihealth":
        from scanner_agent.lab.alihealth_emulator import AliHealthEmulator

        gw = stack.enter_context(AliHealthEmulator({DEMO_APP_KEY: DEMO_SECRET}))

        def held() -> int:
            with gw.state.lock:
                return sum(len(p["trace_codes"].split(",")) for p in gw.state.bills.values())

        def bills() -> dict[str, dict[str, str]]:
            with gw.state.lock:
                return {number: dict(p) for (_ref, number), p in gw.state.bills.items()}

        tables = {
            "sync": {"protocol": "alihealth", "idle_poll_s": 0.2},
            "alihealth": {
                "url": gw.url,
                "app_key": DEMO_APP_KEY,
                "app_secret_file": str(cred),
                "ref_user_id": "demo-ref-ent",
                "ent_id": "demo-ent-self",
                "oper_ic_name": "演示仓",
                "status_poll_s": 0.1,
                "status_polls": 3,
                "extra": {"warehouse_id": "WH-DEMO-1"},
            },
        }
        return Service("码上放心 gateway emulator", gw.url, tables, held, bills)
    if protocol == "epcis":
        from scanner_agent.lab.epcis_emulator import EpcisEmulator

        repo = stack.enter_context(EpcisEmulator(token=DEMO_TOKEN))
        prefix = "urn:cn:drugtrace:"
        for code in unknown:
            repo.state.refuse_epcs[prefix + code] = "not a product known to this repository"

        def events() -> int:
            with repo.state.lock:
                return len(repo.state.events)

        tables = {
            "sync": {"protocol": "epcis", "idle_poll_s": 0.2},
            "epcis": {
                "url": repo.url,
                "token_file": str(cred),
                "read_point": "urn:epc:id:sgln:6900000.00001.0",
                "biz_location": "urn:epc:id:sgln:6900000.00001.0",
                "cn20_uri_prefix": prefix,
                "poll_initial_s": 0.05,
                "poll_max_s": 0.2,
            },
        }
        return Service("EPCIS 2.0 repository emulator", repo.url, tables, events)
    trace = stack.enter_context(
        TraceServerThread(workdir / "trace-service.db", DEMO_TOKEN, reject_codes=unknown)
    )
    tables = {"sync": {"url": trace.url, "token_file": str(cred), "idle_poll_s": 0.2}}
    return Service("trace service", trace.url, tables, trace.store.count_events)


async def wait_for_status(daemon: Daemon, numbers: list[str], timeout_s: float = 3.0) -> None:
    """码上放心: give the status polls a moment to record how the platform processed the bill."""
    assert daemon.desk is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        logs = [await daemon.desk.history(n) for n in numbers]
        uploaded = [log for log in logs if any(h["event"] == "upload" for h in log)]
        accepted = [log for log in uploaded if any(" accepted " in h["detail"] + " " for h in log)]
        if all(any(h["event"] == "platform-status" for h in log) for log in accepted):
            return
        await asyncio.sleep(0.05)


async def bill_lines(
    daemon: Daemon, numbers: list[str], stored: dict[str, dict[str, str]]
) -> list[str]:
    """Each (sub-)bill's upload verdict and platform state from the bill log."""
    from scanner_agent.sinks.alihealth import OPTIONAL_PARAMS

    assert daemon.desk is not None
    lines = []
    for number in numbers:
        for entry in await daemon.desk.history(number):
            if entry["event"] not in ("upload", "platform-status"):
                continue
            line = entry["detail"]
            sub = line.split(":", 1)[0]
            sent = stored.get(sub, {})
            optional = ", ".join(
                f"{k}={v}" for k, v in sorted(sent.items()) if k in OPTIONAL_PARAMS
            )
            if entry["event"] == "upload" and optional:
                line += f"  [{optional}]"
            lines.append(line)
    return lines


async def open_demo_bill(daemon: Daemon, sims: list[SimScan], *, alihealth: bool = False) -> str:
    """A sales shipment expecting the simulated products (a few short, to show it); its number.

    For 码上放心 the parties are 码上放心 ``ent_id``s (the shipper's is ``alihealth.ent_id``) and
    the bill carries an optional upload parameter of its own (``order_code``).
    """
    assert daemon.desk is not None
    counts = Counter(
        s.line[:7] if s.kind == "cn20" else s.line[5:19] for s in sims if s.kind in ("cn20", "gs1")
    )
    names = [
        "阿莫西林胶囊",
        "布洛芬缓释胶囊",
        "头孢克肟片",
        "连花清瘟胶囊",
        "二甲双胍缓释片",
        "阿托伐他汀钙片",
        "维生素C片",
        "氯雷他定片",
        "奥美拉唑肠溶胶囊",
        "蒙脱石散",
    ]
    rows = [
        f"{p},{names[i % len(names)]},{n + 2}" for i, (p, n) in enumerate(sorted(counts.items()))
    ]
    number = time.strftime("DEMO-%H%M%S")
    if alihealth:
        await daemon.desk.open(
            number, 201, to_party="demo-customer-ent", params={"order_code": f"PO-{number}"}
        )
    else:
        await daemon.desk.open(number, 201, from_party="演示仓", to_party="演示药房")
    await daemon.desk.import_expected(None, "product,name,count\n" + "\n".join(rows) + "\n")
    return number
