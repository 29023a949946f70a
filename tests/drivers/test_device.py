"""The shared device layer: the reader thread keeps I/O and handler failures apart."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.device import Backoff
from drivers.reader import FdReader, ReaderThread, open_device_fd
from drivers.serialport import SerialSource
from scanner_agent.kernel import DeviceDisconnected, DeviceUnavailable
from tests.drivers.emulators import PlainScanner
from tests.support.drivers import PLAIN, RunSource, cn20
from tests.support.polling import eventually


class Recorder:
    def __init__(self, fail_on: bytes | None = None) -> None:
        self.data: list[bytes] = []
        self.lost: list[BaseException | None] = []
        self.done = threading.Event()
        self.fail_on = fail_on

    def data_received(self, data: bytes) -> None:
        if data == self.fail_on:
            raise RuntimeError("handler bug")
        self.data.append(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)
        self.done.set()


def scripted(*steps: bytes | Exception) -> Callable[[], bytes]:
    items = list(steps)

    def read() -> bytes:
        item = items.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return read


def test_a_read_failure_ends_in_connection_lost_with_a_device_error() -> None:
    rec = Recorder()
    thread = ReaderThread(
        scripted(b"a", b"", b"b", OSError(5, "Input/output error")), rec, device="/dev/x"
    )
    thread.start()
    assert rec.done.wait(5)
    assert rec.data == [b"a", b"b"]
    (lost,) = rec.lost
    assert isinstance(lost, DeviceDisconnected)
    assert str(lost) == "Failed to read '/dev/x': Input/output error"
    assert isinstance(lost.__cause__, OSError)


def test_a_handler_failure_ends_in_connection_lost_with_the_handler_error() -> None:
    rec = Recorder(fail_on=b"boom")
    thread = ReaderThread(scripted(b"a", b"boom", b"never"), rec, device="/dev/x")
    thread.start()
    assert rec.done.wait(5)
    (lost,) = rec.lost
    assert isinstance(lost, RuntimeError)
    assert not isinstance(lost, DeviceDisconnected)
    assert rec.data == [b"a"]


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_fd_reader_is_woken_by_cancel_and_reports_end_of_file(pipe: tuple[int, int]) -> None:
    r, w = pipe
    reader = FdReader(r, "pipe")
    rec = Recorder()
    thread = ReaderThread(reader.read, rec, device="pipe", cancel=reader.cancel)
    thread.start()
    os.write(w, b"xyz")
    thread.stop()  # blocked in select: cancel wakes it
    assert not thread.is_alive()
    assert rec.lost == [None]
    reader.close()

    r2, w2 = os.pipe()
    os.close(w2)
    reader = FdReader(r2, "pipe")
    with pytest.raises(DeviceDisconnected, match="end of file"):
        reader.read()
    reader.close()
    os.close(r2)


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    b = Backoff(0.1, 0.5)
    assert [b.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    b.reset()
    assert b.next() == 0.1
    with pytest.raises(ValueError, match="initial"):
        Backoff(1, 0.5)


def test_a_device_node_is_locked_against_a_second_reader(tmp_path: Path) -> None:
    node = tmp_path / "node"
    node.write_bytes(b"")
    fd = open_device_fd(str(node))
    try:
        with pytest.raises(DeviceUnavailable, match="another reader"):
            open_device_fd(str(node))
    finally:
        os.close(fd)
    with pytest.raises(DeviceUnavailable, match="No such file"):
        open_device_fd(str(tmp_path / "absent"))


class Flaky(SerialSource):
    """A serial source whose handler has a bug for one input."""

    async def _handle(self, link: object, data: bytes) -> None:
        if b"!" in data:
            raise RuntimeError("parser bug")
        await super()._handle(link, data)


async def test_a_handler_fault_is_counted_and_the_device_stays_connected(
    tmp_path: Path, run_source: RunSource
) -> None:
    emu = PlainScanner(tmp_path / "flaky")
    try:
        source = Flaky("serial:flaky", str(emu.link), profile=PLAIN, reconnect_initial_s=0.01)
        agent = await run_source(source)
        await eventually(lambda: source.connected)
        emu.write(b"!")
        await eventually(lambda: source.errors == 1)
        emu.scan(cn20(70))
        await eventually(lambda: emu.received == b"G")
        assert source.connected
        assert source.connects == 1
        assert await agent.stop() == [cn20(70)]
    finally:
        emu.close()
