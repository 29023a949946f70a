"""Framing throughput: our serial path and framers beside pyserial's, on the same bytes.

Run it by hand (never from the test suite)::

    .venv/bin/python bench/framing.py [--count 20000] [--chunk 4096]

Measures, on one machine in one run:

* ``serial_path``: frames per second through the whole serial driver -- a
  scanner emulator writes N ``code CR LF`` lines into a real pty, and
  :class:`drivers.serialport.SerialSource` (reader thread, hand-over to the
  event loop, framing, submit) feeds a minimal intake that answers
  "accepted" at once; beside it pyserial's own ``serial.threaded.ReaderThread``
  with a ``Packetizer`` on the same pty and the same bytes.
* ``line_framing``: the framers alone, fed the same bytes in ``--chunk``
  pieces: :class:`drivers.framing.LineFramer`, our
  :class:`drivers.serial_protocols.ScanLineFramer`, and pyserial's ``Packetizer``
  and ``LineReader``.
* ``ssi_framing``: :class:`drivers.ssi.SsiFramer` alone and
  :class:`drivers.ssi.SsiSession` (framing plus the ACK for every packet) on
  N DECODE_DATA packets.

Progress goes to stderr; stdout gets one JSON object (the last line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import serial
import serial.threaded

from drivers import ssi
from drivers.framing import LineFramer
from drivers.profiles import parse_profile
from drivers.serial_protocols import ScanLineFramer
from drivers.serialport import SerialSource
from scanner_agent.kernel import RawScan, ScanOutcome, Verdict

PROFILE = parse_profile(
    "bench-plain",
    '[profile]\nvendor = "Bench"\nmodel = "Plain"\ninterfaces = ["rs232"]\n'
    '[serial]\nprotocol = "plain"\n[framing]\nterminator = "crlf"\n',
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def codes(count: int) -> bytes:
    return b"".join(b"8123456%09d0000\r\n" % i for i in range(count))


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def rate(count: int, seconds: float) -> dict[str, float]:
    return {"frames": count, "seconds": round(seconds, 4), "fps": round(count / seconds)}


# -- through a pty ---------------------------------------------------------------------


class Pty:
    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def pour(self, data: bytes, chunk: int) -> threading.Thread:
        def run() -> None:
            for piece in chunks(data, chunk):
                view = memoryview(piece)
                while view:
                    view = view[os.write(self.master, view) :]

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        for fd in (self.master, self.slave):
            os.close(fd)


class NullIntake:
    """Answers every scan "accepted" at once; sets ``done`` after ``count`` scans."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.seen = 0
        self.done = asyncio.Event()

    async def submit(self, scan: RawScan) -> ScanOutcome:
        self.seen += 1
        if self.seen >= self.count:
            self.done.set()
        return ScanOutcome(Verdict.ACCEPTED, scan.data.decode())


async def agent_serial_path(data: bytes, count: int, chunk: int) -> dict[str, float]:
    pty = Pty()
    try:
        source = SerialSource("bench", pty.path, profile=PROFILE)
        intake = NullIntake(count)
        task = asyncio.create_task(source.run(intake))
        deadline = time.monotonic() + 10
        while not source.connected:
            if time.monotonic() > deadline:
                raise RuntimeError("the serial source did not connect")
            await asyncio.sleep(0.001)
        start = time.perf_counter()
        writer = pty.pour(data, chunk)
        await asyncio.wait_for(intake.done.wait(), 120)
        elapsed = time.perf_counter() - start
        writer.join()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert intake.seen == count, (intake.seen, count)
        return rate(count, elapsed)
    finally:
        pty.close()


def pyserial_serial_path(data: bytes, count: int, chunk: int) -> dict[str, float]:
    pty = Pty()
    done = threading.Event()
    seen = [0]

    class Counter(serial.threaded.Packetizer):
        TERMINATOR = b"\r\n"

        def handle_packet(self, packet: bytes) -> None:
            seen[0] += 1
            if seen[0] >= count:
                done.set()

    port = serial.serial_for_url(pty.path, timeout=0.5)
    try:
        with serial.threaded.ReaderThread(port, Counter):
            start = time.perf_counter()
            writer = pty.pour(data, chunk)
            if not done.wait(120):
                raise RuntimeError(f"pyserial saw {seen[0]} of {count} lines")
            elapsed = time.perf_counter() - start
            writer.join()
    finally:
        pty.close()
    return rate(count, elapsed)


# -- framers alone --------------------------------------------------------------------------


def best_of(runs: int, fn: Callable[[], int]) -> tuple[int, float]:
    best = float("inf")
    frames = 0
    for _ in range(runs):
        start = time.perf_counter()
        frames = fn()
        best = min(best, time.perf_counter() - start)
    return frames, best


def line_framing(data: bytes, chunk: int, runs: int) -> dict[str, Any]:
    pieces = chunks(data, chunk)

    def ours(framer_type: Callable[[], Any]) -> Callable[[], int]:
        def run() -> int:
            framer = framer_type()
            return sum(len(framer.feed(p)) for p in pieces)

        return run

    def pyserial(cls: type[serial.threaded.Protocol]) -> Callable[[], int]:
        def run() -> int:
            seen = [0]

            class Counting(cls):  # type: ignore[valid-type,misc]
                TERMINATOR = b"\r\n"

                def handle_packet(self, packet: bytes) -> None:
                    seen[0] += 1

                def handle_line(self, line: str) -> None:
                    seen[0] += 1

            protocol = Counting()
            for p in pieces:
                protocol.data_received(p)
            return seen[0]

        return run

    results: dict[str, Any] = {}
    for name, fn in (
        ("LineFramer", ours(lambda: LineFramer(b"\r\n"))),
        ("ScanLineFramer", ours(lambda: ScanLineFramer(b"\r\n"))),
        ("pyserial.Packetizer", pyserial(serial.threaded.Packetizer)),
        ("pyserial.LineReader", pyserial(serial.threaded.LineReader)),
    ):
        frames, seconds = best_of(runs, fn)
        results[name] = rate(frames, seconds)
        log(f"  {name:<22} {results[name]['fps']:>12,} frames/s")
    base = results["pyserial.Packetizer"]["fps"]
    results["ratio_LineFramer_vs_Packetizer"] = round(results["LineFramer"]["fps"] / base, 2)
    results["ratio_ScanLineFramer_vs_Packetizer"] = round(
        results["ScanLineFramer"]["fps"] / base, 2
    )
    return results


def ssi_framing(count: int, chunk: int, runs: int) -> dict[str, Any]:
    packets = b"".join(
        ssi.encode_packet(
            ssi.Opcode.DECODE_DATA, b"\x1b" + b"8123456%09d0000" % i, source=ssi.DECODER
        )
        for i in range(count)
    )
    pieces = chunks(packets, chunk)

    def framer() -> int:
        f = ssi.SsiFramer()
        return sum(len(f.feed(p)) for p in pieces)

    def session() -> int:
        s = ssi.SsiSession()
        return sum(sum(isinstance(e, ssi.Decode) for e in s.receive(p)) for p in pieces)

    results: dict[str, Any] = {"bytes": len(packets)}
    for name, fn in (("SsiFramer", framer), ("SsiSession", session)):
        frames, seconds = best_of(runs, fn)
        assert frames == count, (name, frames)
        results[name] = rate(frames, seconds)
        log(f"  {name:<22} {results[name]['fps']:>12,} packets/s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="frames per measurement")
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per write / feed")
    parser.add_argument("--runs", type=int, default=3, help="best of N for the pure framers")
    args = parser.parse_args()
    data = codes(args.count)

    log(f"serial path through a pty ({args.count} frames, {len(data)} bytes):")
    ours = asyncio.run(agent_serial_path(data, args.count, args.chunk))
    log(f"  SerialSource           {ours['fps']:>12,} frames/s")
    peer = pyserial_serial_path(data, args.count, args.chunk)
    log(f"  pyserial ReaderThread  {peer['fps']:>12,} frames/s")
    log("line framing alone:")
    lines = line_framing(data, args.chunk, args.runs)
    log("SSI framing alone:")
    packets = ssi_framing(args.count, args.chunk, args.runs)

    print(
        json.dumps(
            {
                "bench": "framing",
                "python": platform.python_version(),
                "pyserial": serial.__version__,
                "count": args.count,
                "chunk": args.chunk,
                "serial_path": {
                    "SerialSource": ours,
                    "pyserial.ReaderThread+Packetizer": peer,
                    "ratio": round(ours["fps"] / peer["fps"], 2),
                },
                "line_framing": lines,
                "ssi_framing": packets,
            }
        )
    )


if __name__ == "__main__":
    main()
