"""systemd's side of sd_notify, for the watchdog and readiness tests."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


class NotifyListener:
    """The systemd side: a datagram socket, read by a thread that stamps each arrival."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def snapshot(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self.messages)

    def pings(self) -> list[float]:
        return [t for t, m in self.snapshot() if m.startswith("WATCHDOG=1")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
