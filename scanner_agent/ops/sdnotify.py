"""systemd's notify protocol (``sd_notify``) without libsystemd.

With ``Type=notify`` systemd waits for ``READY=1`` before it considers the
service started, restarts it when ``WATCHDOG=1`` pings stop arriving within
``WatchdogSec=``, and shows the last ``STATUS=`` line in ``systemctl status``.
The protocol is one datagram per message on the UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace).  Outside
systemd the variable is unset and every call is a no-op.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends notify messages to systemd, if it is listening."""

    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        self.address = addr or None
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._sock is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines (``ready=1`` becomes ``READY=1``); False if not sent."""
        if self._sock is None or self.address is None:
            return False
        message = "\n".join(f"{k.upper()}={v}" for k, v in fields.items())
        try:
            self._sock.sendto(message.encode("utf-8"), self.address)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """Half the watchdog timeout systemd set for this process, or None if none.

    ``WATCHDOG_PID``, when set, must be our pid: the variable may be inherited
    by a child that is not the service's main process.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2_000_000
