"""The TCP protocol on the real daemon: one reply per frame, in order, in one grammar.

A client that parses every reply with the documented grammar
(docs/tcp-protocol.md, :func:`drivers.tcp_protocol.parse_reply`) drives a daemon
built from a config, and meets every reply kind: accepted, invalid, duplicate,
full, error, empty, too long and binary.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.tcp_protocol import hello_version
from scanner_agent.config import AgentConfig
from tests.drivers.tcp_client import BlockingScanner, Scanner, agent_thread, port_of, tcp_agent

CN20 = b"81234560000000011234"
GS1 = b"]d2010690123456789217280500104711\x1d21ABC123"
GS1_HRI = "(01)06901234567892(17)280500(10)4711(21)ABC123"


async def test_every_reply_kind_follows_the_grammar_and_echoes_its_frame(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config) as (_daemon, source):
        scanner = await Scanner.connect(port_of(source))
        binary = b"\x00\xff\x1b[2J\tA\\x20"
        frames = [CN20, GS1, b"6901234567892", b"AB C 12", CN20, binary]
        await scanner.send(*frames)
        acc, gs1, product, spaced, dup, raw = await scanner.replies(len(frames))

        assert (acc.accepted, acc.kind, acc.echo, acc.detail) == (
            True,
            "accepted",
            CN20,
            CN20.decode(),
        )
        # The AIM prefix and the GS separator are echoed as sent; the stored code comes after.
        assert (gs1.kind, gs1.echo, gs1.detail) == ("accepted", GS1, GS1_HRI)
        assert (product.accepted, product.kind) == (False, "invalid")
        assert product.detail == "a product barcode, not a trace code"
        # A code with spaces and a reason with spaces are still told apart.
        assert (spaced.kind, spaced.echo) == ("invalid", b"AB C 12")
        assert (dup.kind, dup.echo, dup.detail) == ("duplicate", CN20, "duplicate scan")
        assert (raw.kind, raw.echo) == ("invalid", binary)
        await scanner.close()


async def test_an_empty_frame_gets_one_reply_and_a_split_crlf_is_no_empty_frame(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config) as (_daemon, source):
        scanner = await Scanner.connect(port_of(source))
        await scanner.send(b"")  # a bare LF: an empty frame
        empty = await scanner.reply()
        assert (empty.accepted, empty.kind, empty.echo) == (False, "empty", b"")
        # CR at the end of one segment, LF at the start of the next: one terminator.
        await scanner.send(CN20, end=b"\r")
        assert (await scanner.reply()).kind == "accepted"
        await scanner.send(b"\n81234560000000022345", end=b"\r\n")
        assert (await scanner.reply()).echo == b"81234560000000022345"
        await scanner.send(b"", b"", end=b"\r\n")
        assert [r.kind for r in await scanner.replies(2)] == ["empty", "empty"]
        await scanner.close()


async def test_an_over_long_line_gets_exactly_one_reply_whatever_its_length(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, max_frame=4096) as (_daemon, source):
        scanner = await Scanner.connect(port_of(source))
        line = bytes(i % 10 + 0x30 for i in range(1 << 20))  # 1 MiB, many reads long
        await scanner.send(line, CN20)
        long, after = await scanner.replies(2)
        assert (long.accepted, long.kind, long.echo) == (False, "too-long", line[:4096])
        assert "4096" in long.detail
        assert (after.kind, after.echo) == ("accepted", CN20)
        # Nothing else arrives: the next frame's reply is the next line.
        await scanner.send(b"x")
        assert (await scanner.reply()).echo == b"x"
        await scanner.close()


async def test_a_full_outbox_naks_every_frame_with_kind_full(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, outbox={"min_free_mb": 1 << 40}) as (_daemon, source):
        scanner = await Scanner.connect(port_of(source))
        full, bad = await scanner.scan(CN20, b"nope")
        assert (full.kind, full.detail) == ("full", "outbox full")
        assert bad.kind == "invalid"
        await scanner.close()


async def test_a_storage_error_naks_with_kind_error(
    make_config: Callable[..., AgentConfig], tmp_path: Path
) -> None:
    async with tcp_agent(make_config) as (_daemon, source):
        # Another process breaks the file under the daemon: every insert of scans now fails.
        with sqlite3.connect(tmp_path / "outbox.db") as db:
            db.execute(
                "CREATE TRIGGER injected_fault BEFORE INSERT ON scans "
                "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
            )
        scanner = await Scanner.connect(port_of(source))
        (err,) = await scanner.scan(CN20)
        assert (err.accepted, err.kind, err.detail) == (False, "error", "storage error")
        await scanner.close()


async def test_hello_tells_the_version_and_the_limits(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, max_frame=2048) as (_daemon, source):
        scanner = await Scanner.connect(port_of(source))
        await scanner.send(b"HELLO 2", CN20)
        hello = await scanner.line()
        version, agent, params = hello.rstrip(b"\n").split(b"\t")
        assert (version, agent) == (b"HELLO 2", b"scanner-agent")
        assert b"max_frame=2048" in params.split(b" ")
        assert (await scanner.reply()).kind == "accepted"
        await scanner.close()


async def test_version_1_keeps_the_old_reply_lines_for_old_controllers(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, protocol=1) as (_daemon, source):
        scanner = await Scanner.connect(port_of(source))
        await scanner.send(CN20, GS1, b"", b"6901234567892")
        lines = [await scanner.line() for _ in range(4)]
        assert lines == [
            b"ACK 81234560000000011234\n",
            f"ACK {GS1_HRI}\n".encode(),
            b"NAK - empty frame\n",
            b"NAK 6901234567892 a product barcode, not a trace code\n",
        ]
        await scanner.close()


FRAME_BYTES = st.binary(max_size=200).filter(
    lambda b: b"\r" not in b and b"\n" not in b and hello_version(b) is None
)
"""Any frame but a HELLO (which gets the HELLO reply, tested above)."""


def test_any_frames_get_one_grammatical_reply_each_in_order(
    make_config: Callable[..., AgentConfig],
) -> None:
    source = {
        "type": "tcp",
        "listen": "127.0.0.1:0",
        "ack": True,
        "max_frame": 64,
        "refused_per_s": 1e9,  # thousands of random frames are refused: no slowing down here
    }
    cfg = make_config(sync={"enabled": False}, control={"socket": ""}, source=[source])
    with agent_thread(cfg) as tcp:

        @settings(max_examples=200, deadline=None)
        @given(frames=st.lists(FRAME_BYTES, min_size=1, max_size=30))
        def check(frames: list[bytes]) -> None:
            scanner = BlockingScanner(port_of(tcp))
            try:
                scanner.send(*frames, b"END")
                got = [scanner.reply() for _ in range(len(frames) + 1)]
            finally:
                scanner.close()
            assert [r.echo for r in got] == [f[:64] for f in frames] + [b"END"]
            for frame, r in zip(frames, got, strict=False):
                assert r.kind != "empty" or not frame
                assert (r.kind == "too-long") == (len(frame) > 64)
                assert r.accepted == (r.kind == "accepted")

        check()
