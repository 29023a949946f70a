"""What the sync loop sends batches to: one sink per protocol (``sync.protocol``).

The loop owns everything the protocols share: the outbox, leases, the
pipelining window, retry with backoff, the refused-credential pause and the
per-event settlement.  A sink only knows its platform:

* which rows form a batch (:meth:`Sink.lease`: the oldest rows for Trace API
  v1, one whole closed bill for 码上放心),
* how a batch is put on the wire (:meth:`Sink.encode`, run on the outbox
  thread right after the lease, so it may read the outbox),
* and what the platform said about each event (:meth:`Sink.send_batch`).

A sink reports failures with the :class:`~scanner_agent.kernel.SyncError`
tree, which is what drives the loop: ``TransientSyncError`` (and its
``RateLimitedError``) retries the same batch after backoff or ``retry_after``,
``AuthError`` pauses until :meth:`Sink.set_token` brings a new credential,
``BatchRejectedError`` dead-letters the batch with the message,
``ProtocolError`` retries without marking anything.

Each sink also declares, in its :class:`Admission`, what it can take at all:
code schemes, whether a scan needs an opened bill, which bill types, which
parties.  The intake asks it *before* a scan is committed, so a scan the sink
would refuse is NAKed at the scanner with the sink's reason and never ACKed;
the sink applies the same declaration when it sends (to rows queued before
the rule applied, e.g. under another ``sync.protocol``), so both places give
one answer with one reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from scanner_agent.bills import bill_type
from scanner_agent.outbox import Batch, EventResult, Outbox, OutboxThread

if TYPE_CHECKING:
    import httpx


class BillTerms(Protocol):
    """What an admission rule reads of a bill (:class:`scanner_agent.bills.Bill` has it)."""

    @property
    def number(self) -> str: ...

    @property
    def type(self) -> int | None:
        """The platform's bill type code; ``None`` for a default bill (never opened)."""
        ...

    @property
    def from_party(self) -> str: ...

    @property
    def to_party(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Admission:
    """What a sink can take, known before any scan is committed.

    Owned by the sink (its ``admission``), asked by the intake for every
    submission (:meth:`gate`, once per call; then a set lookup per scan) and
    by the sink itself when it sends (:meth:`refusal`): one rule, one reason.
    """

    platform: str
    """The platform as operators know it, in reasons: ``码上放心``, ``EPCIS``."""
    schemes: frozenset[str]
    """Code schemes taken (``cn20``, ``gs1``, ``ma``)."""
    takes: str
    """What :attr:`schemes` are, for people: ``20-digit trace codes``."""
    bill_required: bool = False
    """A scan must be on a bill opened with a bill type (not a device's default bill)."""
    bill_families: frozenset[int] = frozenset()
    """Bill type families taken, by the type code's hundreds (1 into stock, 2 out of
    stock, 3 use); empty: any."""
    parties: frozenset[str] = frozenset()
    """Sides a bill must name: ``from`` (shipper) and/or ``to`` (receiver)."""
    own_party: str = ""
    """This enterprise's id: fills its own side of a bill (``from`` on an outbound
    bill, ``to`` on an inbound one) when the bill leaves it empty."""
    party_id: str = "id"
    """What a party is on the platform, in reasons: ``ent_id``."""
    own_party_setting: str = ""
    """The config key holding :attr:`own_party`, in reasons: ``alihealth.ent_id``."""
    _open_gate: Gate | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.bill_required:
            # Nothing about the bill matters: one gate for every submission.
            object.__setattr__(self, "_open_gate", Gate(self.schemes, self, None))

    def scheme_problem(self, scheme: str) -> str | None:
        """Why a code of ``scheme`` cannot be taken, or None."""
        if scheme in self.schemes:
            return None
        return f"{self.platform} takes only {self.takes}"

    def parties_of(self, bill: BillTerms) -> tuple[str, str]:
        """``(from, to)`` of ``bill``, its empty own side filled with :attr:`own_party`."""
        direction = bill_type(bill.type).direction if bill.type is not None else ""
        from_id = bill.from_party or (self.own_party if direction == "out" else "")
        to_id = bill.to_party or (self.own_party if direction == "in" else "")
        return from_id, to_id

    def bill_problem(self, number: str, bill: BillTerms | None) -> str | None:
        """Why scans of bill ``number`` cannot be taken, or None.

        ``bill`` is the bill as opened with a type; ``None`` when there is none
        (the device's default bill, or, at the scanner, a bill no longer open).
        """
        if not self.bill_required:
            return None
        if bill is None or bill.type is None:
            return (
                f"no bill open: open a {self.platform} bill first "
                f"(scanner-agent bill open NUMBER --type TYPE); scans of {number} "
                "cannot be uploaded"
            )
        if self.bill_families and bill.type // 100 not in self.bill_families:
            families = ", ".join(f"{f}xx" for f in sorted(self.bill_families))
            return (
                f"bill type not taken: {number} has type {bill.type}; "
                f"{self.platform} takes {families}"
            )
        from_id, to_id = self.parties_of(bill)
        for side, party in (("from", from_id), ("to", to_id)):
            if side in self.parties and not party:
                own = (
                    f" (set {self.own_party_setting} for this enterprise's side)"
                    if self.own_party_setting
                    else ""
                )
                return (
                    f"bill lacks a party: {number} has no {side} party (the partner's "
                    f"{self.platform} {self.party_id}); {self.platform} needs "
                    f"{' and '.join(sorted(self.parties))}{own}"
                )
        return None

    def refusal(self, scheme: str, bill_problem: str | None) -> str | None:
        """Why a scan of ``scheme`` on a bill with ``bill_problem`` cannot be taken, or None.

        The scheme comes first: a code the platform never takes is refused as
        such, whatever the bill.
        """
        return self.scheme_problem(scheme) or bill_problem

    def gate(self, number: str, bill: BillTerms | None) -> Gate:
        """The rule for one submission of scans onto bill ``number`` (see :meth:`bill_problem`)."""
        if self._open_gate is not None:
            return self._open_gate
        problem = self.bill_problem(number, bill)
        return Gate(frozenset() if problem else self.schemes, self, problem)


class Gate(NamedTuple):
    """:class:`Admission` decided for one bill: the intake's per-scan test is ``scheme in takes``."""

    takes: frozenset[str]
    """Schemes taken onto this bill now; empty when the bill itself is refused."""
    admission: Admission
    bill_problem: str | None

    def reason(self, scheme: str) -> str:
        """Why a scan of ``scheme`` is refused here (only asked when it is)."""
        return self.admission.refusal(scheme, self.bill_problem) or "refused by the sink"


class Sink(Protocol):
    """One platform's side of the sync loop (see the module docstring)."""

    @property
    def admission(self) -> Admission:
        """What this sink can take at all (asked at the scanner, applied again when sending)."""
        ...

    def lease(self, outbox: Outbox, limit: int, *, lease_s: float, max_bytes: int) -> Batch | None:
        """Outbox thread: lease the next batch to send, or None when nothing is due.

        An expired lease must come back first with the same id and rows, so a
        retry after a crash is recognisable to the platform.
        """
        ...

    def encode(self, batch: Batch) -> Any:
        """Outbox thread: the request(s) for ``batch``, handed back to :meth:`send_batch`.

        Raises:
            ValueError: the batch cannot be encoded (the loop gives it back and backs off).
        """
        ...

    async def send_batch(self, batch: Batch, body: Any) -> dict[str, EventResult]:
        """Deliver ``batch`` (``body`` from :meth:`encode`); one verdict per event.

        Raises:
            SyncError: its subclasses as described in the module docstring.
        """
        ...

    def set_token(self, token: str) -> bool:
        """Use a new credential from the next request on; True when it changed."""
        ...

    async def aclose(self) -> None:
        """Close connections and stop background work."""
        ...


@runtime_checkable
class MovableSink(Protocol):
    """A sink whose service can move while it runs: ``sync.url`` applied on reload (Trace
    API v1; a platform's URL needs a restart)."""

    def set_base_url(self, url: str) -> None:
        """Send the next requests to ``url`` (requests already sent finish where they went)."""
        ...


@runtime_checkable
class PlatformAlarms(Protocol):
    """A sink that learns of problems after delivery, which need a person.

    The 码上放心 platform processes a bill after taking it, and may fail to: the
    scans are delivered, so nothing in the outbox shows it.  Such a sink keeps
    the problems, the daemon shows :meth:`alarms` in ``status()['alarms']``
    (CLI ``status``, TUI, metrics), and an operator clears one with
    :meth:`acknowledge` (``scanner-agent bill ack``).
    """

    async def load_alarms(self) -> None:
        """Read the problems not yet acknowledged back from the outbox (at start)."""
        ...

    def alarms(self) -> list[str]:
        """The alarm lines to show now (empty: none)."""
        ...

    async def acknowledge(self, bill: str, note: str) -> list[Any]:
        """Record that a person handled ``bill``'s problems; the ones cleared (empty: none)."""
        ...


SyncObserver = Callable[[float, str], None]
"""``(seconds, outcome)`` for each finished batch request; outcome is ``ok`` or the error
type.  Must not block (it runs on the event loop)."""


class SinkNames(NamedTuple):
    """Who the sink talks to and with what, in words for operators (alarms, doctor)."""

    platform: str
    """The service, with its URL: ``码上放心 (https://eco.taobao.com/router/rest)``."""
    credential: str
    """What it authenticates with: ``token``, ``app key or secret``."""
    source: str
    """Where that comes from: ``alihealth.app_secret_file (/etc/...)``."""


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What a sink is built with besides its settings (the daemon's parts it shares)."""

    thread: OutboxThread
    """The daemon's outbox thread: a sink's ``encode`` runs on it and may read the outbox."""
    token: str
    """The credential read from the settings (bearer token, or the 码上放心 app secret)."""
    transport: httpx.AsyncBaseTransport | None = None
    """An httpx transport to send through instead of the network (tests)."""
    observers: Sequence[SyncObserver] = ()
    """Told of each batch request's duration (metrics); the daemon's own list, so an
    observer added later (``metrics.listen`` reloaded) is told too."""
