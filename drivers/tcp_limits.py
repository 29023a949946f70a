"""What bounds a TCP source under attack: the limits, per-peer rate limits, the allowlist.

The TCP source listens on the LAN, so anyone who can reach the port can send
it anything.  Each promise here is a number an operator can set in the
source's ``[[source]]`` table (declared in :mod:`drivers.registry`) and read
in docs/tcp-protocol.md:

* frames and bytes in flight (read but not yet answered), per connection and
  for the whole source: past them the source stops reading, so TCP pushes
  back on the sender and memory stays bounded whatever it sends;
* idle, read and write timeouts, and TCP keepalive, so connections that are
  silent, half-sent, never read or half-open (a power-cycled Wi-Fi scanner)
  give their slot back;
* a per-peer rate of refused frames, past which the peer's connections are
  read more slowly (nothing is dropped: every frame still gets its reply);
* an optional allowlist of scanner addresses.

Everything in this module is pure bookkeeping (no I/O), so it is tested and
reasoned about without sockets; :mod:`drivers.tcp` applies it.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PEER_TABLE_MAX = 4096
"""Peers whose rate-limit state is kept; past it, peers that owe nothing are forgotten."""


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """The bounds of one TCP source (the defaults are the documented ones)."""

    max_clients: int = 32
    """Connections at once; a new one evicts the longest-idle connection, or is refused."""
    max_frame: int = 4096
    """Longest frame, in bytes."""
    max_in_flight: int = 256
    """Frames of one connection read but not yet answered."""
    max_in_flight_bytes: int = 256 * 1024
    """Bytes of those frames (one frame is always let through, however long)."""
    total_in_flight: int = 4096
    """Frames of all connections read but not yet answered."""
    total_in_flight_bytes: int = 4 * 1024 * 1024
    """Bytes of those frames."""
    idle_timeout_s: float = 600.0
    """A connection that sends nothing for this long is closed (0: never)."""
    read_timeout_s: float = 10.0
    """A frame must be complete this long after its first byte arrived (0: no limit)."""
    write_timeout_s: float = 30.0
    """Replies the peer does not take within this long close the connection (0: no limit)."""
    keepalive_s: float = 60.0
    """TCP keepalive after this much silence; a dead peer is dropped 1.5 times later (0: off)."""
    refused_per_s: float = 20.0
    """Refused frames per second a peer may send on average before it is slowed down."""
    refused_burst: int = 200
    """Refused frames a peer may send at once before the average applies."""
    allow: tuple[IPNetwork, ...] = ()
    """Addresses allowed to connect; empty allows every address."""

    def keepalive_params(self) -> tuple[int, int, int] | None:
        """``(idle, interval, count)`` in whole seconds for TCP keepalive, or None when off.

        Probes start after ``keepalive_s`` of silence and go every sixth of it
        (at least 1 s); three unanswered ones drop the peer, so a dead one is
        detected within 1.5 times ``keepalive_s``.
        """
        if self.keepalive_s <= 0:
            return None
        idle = max(1, round(self.keepalive_s))
        interval = max(1, round(self.keepalive_s / 6))
        return idle, interval, 3


def parse_allowlist(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) as networks.

    Raises:
        ValueError: an entry is not an address or a network, naming it.
    """
    out: list[IPNetwork] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an address or CIDR network ({exc})") from None
    return tuple(out)


def peer_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's address, an IPv4-mapped IPv6 one (``::ffff:a.b.c.d``) as IPv4."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def allowed(host: str, allow: Sequence[IPNetwork]) -> bool:
    """True if ``host`` may connect: no allowlist, or an address inside one of its networks."""
    if not allow:
        return True
    addr = peer_address(host)
    return addr is not None and any(addr in net for net in allow if addr.version == net.version)


class TokenBucket:
    """A refused-frames budget that refills at ``rate`` per second up to ``burst``.

    Frames are counted after they were refused (the source cannot know
    before it parsed them), so the balance may go below zero; the peer then
    waits until it is back at zero.  An attacker gets ``rate`` refusals a
    second on average, a scanner with a bad label now and then never waits.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.balance = float(burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self.balance = min(self.burst, self.balance + (now - self._at) * self.rate)
        self._at = now

    def take(self, count: int, now: float) -> None:
        """Count ``count`` refused frames."""
        self._refill(now)
        self.balance -= count

    def wait_s(self, now: float) -> float:
        """Seconds until the balance is back at zero (0 when it is not below)."""
        self._refill(now)
        if self.balance >= 0 or self.rate <= 0:
            return 0.0
        return -self.balance / self.rate

    def full(self, now: float) -> bool:
        """True when the peer owes nothing and has its whole burst (its state can be dropped)."""
        self._refill(now)
        return self.balance >= self.burst


class PeerBuckets:
    """One :class:`TokenBucket` per peer address, in a table of bounded size."""

    def __init__(self, rate: float, burst: int, max_peers: int = PEER_TABLE_MAX) -> None:
        self.rate = rate
        self.burst = burst
        self.max_peers = max_peers
        self._buckets: dict[str, TokenBucket] = {}

    def get(self, peer: str, now: float) -> TokenBucket:
        """The peer's bucket (a new, full one for a peer not seen or forgotten)."""
        bucket = self._buckets.get(peer)
        if bucket is None:
            if len(self._buckets) >= self.max_peers:
                self._forget_settled(now)
            bucket = self._buckets[peer] = TokenBucket(self.rate, self.burst, now)
        return bucket

    def _forget_settled(self, now: float) -> None:
        for peer in [p for p, b in self._buckets.items() if b.full(now)]:
            del self._buckets[peer]
        if len(self._buckets) >= self.max_peers:  # all owe: forget the oldest half
            for peer in list(self._buckets)[: self.max_peers // 2]:
                del self._buckets[peer]

    def __len__(self) -> int:
        return len(self._buckets)


class LogThrottle:
    """Log the first of a kind of event at once, then one summary line per ``every_s``.

    Refused connections and slowed-down peers come in floods during an
    attack; a warning each would flood the journal (and cost more than the
    refusal itself).
    """

    def __init__(
        self, logger: logging.Logger, every_s: float = 60.0, level: int = logging.WARNING
    ) -> None:
        self.logger = logger
        self.every_s = every_s
        self.level = level
        self._next_at = 0.0
        self._held = 0
        self._last = ""
        self.total = 0
        """Events noted since start."""

    def note(self, message: str, now: float | None = None) -> None:
        """Count one event; log it, or the summary of those held back, if the period is over."""
        now = time.monotonic() if now is None else now
        self.total += 1
        if now < self._next_at:
            self._held += 1
            self._last = message
            return
        if self._held:
            self.logger.log(
                self.level,
                "%s (and %d more like it in the last %.0f s, the last: %s)",
                message,
                self._held,
                self.every_s,
                self._last,
            )
        else:
            self.logger.log(self.level, "%s", message)
        self._held = 0
        self._next_at = now + self.every_s

    def flush(self, now: float | None = None, *, force: bool = False) -> None:
        """Log the count of events held back once their period is over (or now, with ``force``).

        Called when things calm down (a connection closes, the source stops), so
        the last burst of a flood is reported even if no event follows it.
        """
        now = time.monotonic() if now is None else now
        if not self._held or (now < self._next_at and not force):
            return
        self.logger.log(
            self.level,
            "%d more like this in the last %.0f s, the last: %s",
            self._held,
            self.every_s,
            self._last,
        )
        self._held = 0
        self._next_at = now + self.every_s
