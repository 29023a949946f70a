"""One reader thread per device: blocking reads off the event loop, handed to it in order.

:class:`ReaderThread` runs a blocking ``read`` in its own thread and hands each chunk, then the
end, to a :class:`ReaderProtocol` on the event loop; :class:`FdReader` is the ``read`` of a
file descriptor (hidraw, evdev) that a stop can interrupt.  House rule 2: the read and the
handler fail in separate ``try`` blocks, and both end in one ``connection_lost``."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import threading
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from scanner_agent.kernel import (
    DeviceDisconnected,
    DeviceError,
    DeviceUnavailable,
)

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


@contextlib.contextmanager
def device_errors(device: str, verb: str, error: type[DeviceError] = DeviceError) -> Iterator[None]:
    """Map ``OSError`` (pyserial's ``SerialException`` is one) to our :class:`DeviceError`.

    Raises:
        DeviceError: of class ``error``, naming the device, ``from`` the original.
    """
    try:
        yield
    except DeviceError:
        raise
    except OSError as exc:
        detail = exc.strerror or str(exc) or type(exc).__name__
        raise error(f"Failed to {verb} {device!r}: {detail}", device=device) from exc


class ReaderProtocol(Protocol[T_contra]):
    """What a :class:`ReaderThread` hands its reads to (pyserial's ``Protocol``)."""

    def data_received(self, data: T_contra) -> None:
        """One successful read (called in the reader thread)."""
        ...

    def connection_lost(self, exc: BaseException | None) -> None:
        """The thread ends: ``exc`` is a :class:`DeviceError` for a read failure,
        another exception for a handler failure, ``None`` after :meth:`ReaderThread.stop`."""
        ...


class ReaderThread(threading.Thread, Generic[T]):
    """One thread per device: blocking reads in, ``data_received`` calls out.

    ``read`` blocks until data arrives, returns an empty value on a time-out
    or cancellation, and raises on failure; ``cancel`` (optional) wakes a
    blocked ``read`` so :meth:`stop` is prompt.
    """

    def __init__(
        self,
        read: Callable[[], T],
        protocol: ReaderProtocol[T],
        *,
        device: str,
        cancel: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=f"reader {device}", daemon=True)
        self._read = read
        self._protocol = protocol
        self._cancel = cancel
        self.device = device
        self.alive = True

    def run(self) -> None:
        """Read until stopped or failed; always ends in ``connection_lost``."""
        error: BaseException | None = None
        while self.alive:
            try:
                with device_errors(self.device, "read", DeviceDisconnected):
                    data = self._read()
            except Exception as exc:
                error = exc if self.alive else None
                break
            if not data:
                continue
            try:
                self._protocol.data_received(data)
            except Exception as exc:
                error = exc
                break
        self.alive = False
        self._protocol.connection_lost(error)

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to finish, wake its read and wait for it."""
        self.alive = False
        if self._cancel is not None:
            with contextlib.suppress(Exception):
                self._cancel()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)


class FdReader:
    """Blocking reads of a file descriptor that another thread can interrupt.

    ``os.read`` on ``/dev/hidrawN`` (one report per read), a pipe or a pty,
    with a wake-up pipe beside it in ``select`` so :meth:`cancel` returns a
    blocked :meth:`read` at once.  End of file raises :class:`DeviceDisconnected`.
    """

    def __init__(self, fd: int, device: str, *, size: int = 4096) -> None:
        self.fd = fd
        self.device = device
        self.size = size
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False

    def wait(self) -> bool:
        """Block until the fd is readable (True) or :meth:`cancel` was called (False)."""
        ready, _, _ = select.select([self.fd, self._wake_r], [], [])
        return self._wake_r not in ready

    def read(self) -> bytes:
        """Bytes available now (b"" when cancelled).

        Raises:
            DeviceDisconnected: end of file (the writer or device went away).
            OSError: the read failed (mapped by the reader thread).
        """
        if not self.wait():
            return b""
        data = os.read(self.fd, self.size)
        if not data:
            raise DeviceDisconnected(
                f"Failed to read {self.device!r}: end of file", device=self.device
            )
        return data

    def cancel(self) -> None:
        """Wake a blocked :meth:`read` (idempotent)."""
        if not self._closed:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Close the wake-up pipe (the device fd belongs to the caller)."""
        if not self._closed:
            self._closed = True
            os.close(self._wake_r)
            os.close(self._wake_w)


def open_device_fd(path: str, *, exclusive: bool = True, writable: bool = False) -> int:
    """Open a character device and (advisory) lock it: one reader per device.

    Read-only unless ``writable`` (a hidraw node that is sent output reports),
    so a source that never writes needs no write permission on the node.

    Raises:
        DeviceUnavailable: absent, not permitted, or locked by another reader.
    """
    mode = os.O_RDWR if writable else os.O_RDONLY
    with device_errors(path, "open", DeviceUnavailable):
        fd = os.open(path, mode | os.O_NOCTTY | os.O_CLOEXEC)
    if exclusive:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise DeviceUnavailable(
                f"Failed to lock {path!r}: another reader has it open", device=path
            ) from exc
    return fd
