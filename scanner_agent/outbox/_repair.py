"""Repairs of an open outbox: indexes rebuilt from the table, damaged rows quarantined.

``PRAGMA quick_check`` at open checks the file's structure, and every row a
lease reads is checked against its checksum (issue 16).  What either finds
is repaired here, in the caller's transaction, and raised as an alarm
(:attr:`~OutboxCore.alarms`, shown by ``status``):

* an index of rows by state that disagrees with the table is rebuilt from it
  (:meth:`~OutboxRepairs._rebuild_indexes`): the table is the truth, and these
  indexes hold nothing else;
* a row in flight that no batch holds (a damaged batch id) is made pending
  again (:meth:`~OutboxRepairs._free_orphans`);
* a damaged row is moved to the ``quarantine`` table with its bytes as found
  and never sent (:meth:`~OutboxRepairs._quarantine`); a batch that held one is
  dissolved, so the same batch id always carries the same events.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence

from scanner_agent.kernel import OutboxError
from scanner_agent.outbox._batches import unbatch_in
from scanner_agent.outbox._core import OutboxCore
from scanner_agent.outbox._damage import DamagedRow, quarantine

__all__ = ["OutboxRepairs"]

log = logging.getLogger(__name__)

_ORPHAN = (
    "state = 'in_flight' AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.batch_id = "
    "scans.batch_id AND scans.seq BETWEEN b.first_seq AND b.last_seq)"
)
"""A row in flight that no batch holds (see :meth:`OutboxRepairs._free_orphans`)."""
_COUNT_AND_ORPHANS = (
    "SELECT COUNT(*) FILTER (WHERE state = 'pending'), "  # noqa: S608 (constants)
    f"json_group_array(seq) FILTER (WHERE {_ORPHAN}) FROM scans NOT INDEXED"
)


class OutboxRepairs(OutboxCore):
    """Index rebuilds and the quarantine of damaged rows, with their alarms."""

    def _check_pending_index(self) -> None:
        """Rebuild the index of pending rows if it disagrees with the table; free orphans (at open).

        ``quick_check`` checks each index's structure, not that it lists the
        rows it should: a pending row missing from it would never be leased, in
        silence.  Counting the pending rows through the index and through the
        table costs one pass over the table, as ``quick_check`` itself does; the
        same pass finds the rows in flight that no batch holds
        (:meth:`_free_orphans`).
        """
        try:
            (listed,) = self._db.execute(
                "SELECT COUNT(*) FROM scans INDEXED BY scans_unsent WHERE state = 'pending'"
            ).fetchone()
            stored, orphans = self._db.execute(_COUNT_AND_ORPHANS).fetchone()
            if listed != stored:
                with self.atomic() as db:
                    self._rebuild_indexes(
                        db, f"it listed {listed} pending rows, the table holds {stored}"
                    )
            if seqs := json.loads(orphans or "[]"):
                self._free_orphans(seqs)
        except (sqlite3.Error, OutboxError) as exc:
            log.error("outbox %s: could not check the index of pending rows: %s", self.path, exc)

    def _free_orphans(self, seqs: Sequence[int]) -> None:
        """Make rows in flight that no batch holds pending again, with an alarm.

        The batch id is not covered by the row checksum (it changes as the row
        moves on), so a flipped bit in it, in the row or in ``batches``, left the
        row in flight with no lease ever returning it, in silence.  Each batch
        whose seq range covers an orphan is dissolved too (the same batch id
        must always carry the same events); the service answers an event it
        already holds as a duplicate, so nothing is delivered twice.
        """
        with self.atomic() as db:
            for seq in seqs:
                for (rowid,) in db.execute(
                    "SELECT rowid FROM batches WHERE ? BETWEEN first_seq AND last_seq", (seq,)
                ).fetchall():
                    db.execute(
                        "UPDATE scans SET state = 'pending', batch_id = NULL WHERE state = "
                        "'in_flight' AND batch_id = (SELECT batch_id FROM batches WHERE rowid = ?) "
                        "AND seq BETWEEN (SELECT first_seq FROM batches WHERE rowid = ?) "
                        "AND (SELECT last_seq FROM batches WHERE rowid = ?)",
                        (rowid, rowid, rowid),
                    )
                    db.execute("DELETE FROM batches WHERE rowid = ?", (rowid,))
            db.executemany(
                "UPDATE scans SET state = 'pending', batch_id = NULL "
                "WHERE seq = ? AND state = 'in_flight'",
                [(s,) for s in seqs],
            )
        shown = ", ".join(map(str, seqs[:5])) + (
            f" and {len(seqs) - 5} more" if len(seqs) > 5 else ""
        )
        alarm = (
            f"outbox {self.path}: {len(seqs)} rows in flight belonged to no batch (a damaged "
            f"batch id: seq {shown}); pending again, to be sent again (the service answers a "
            "duplicate for any it holds)"
        )
        log.error("ALARM: %s", alarm)
        self.alarms.append(alarm)

    def _rebuild_indexes(self, db: sqlite3.Connection, why: str) -> None:
        """Rebuild the partial indexes of ``scans`` by state from the table, with an alarm.

        A damaged index entry (a flipped bit in a seq) makes a lease select a row
        that is not pending, or miss one that is: the table is the truth, and
        these indexes hold nothing else.
        """
        log.error("ALARM: outbox %s: rebuilding the indexes of rows by state (%s)", self.path, why)
        db.execute("REINDEX scans_unsent")
        db.execute("REINDEX scans_dead")
        alarm = f"outbox {self.path}: an index of rows by state was damaged ({why}); rebuilt"
        if alarm not in self.alarms:
            self.alarms.append(alarm)

    def _quarantine(self, db: sqlite3.Connection, damaged: Sequence[DamagedRow]) -> None:
        """Quarantine ``damaged`` rows in ``db``'s transaction; raise the alarm, log once.

        A batch that held one is dissolved (its other rows go back to pending and
        are leased again under a new id): the same batch id must always carry the
        same events, and the service answers an event it already holds as a
        duplicate, so nothing is delivered twice.
        """
        for batch_id in quarantine(db, damaged, self.now_iso()):
            unbatch_in(db, batch_id)
        new = [d for d in damaged if d.seq not in self._quarantined]
        for d in new:
            self._quarantined[d.seq] = d.problem
            log.error(
                "ALARM: outbox %s: damaged row seq %d quarantined (%s); its bytes are kept in "
                "the quarantine table",
                self.path,
                d.seq,
                d.problem,
            )
        if new:
            self._raise_quarantine_alarm()

    def _raise_quarantine_alarm(self) -> None:
        """One alarm line for every row quarantined since open, replaced as more are found."""
        shown = ", ".join(f"seq {seq}: {why}" for seq, why in list(self._quarantined.items())[:5])
        more = len(self._quarantined) - 5
        n = len(self._quarantined)
        alarm = (
            f"outbox {self.path}: {n} damaged row{'s' if n > 1 else ''} quarantined "
            f"({shown}{f', and {more} more' if more > 0 else ''}); never sent, kept for forensics "
            "(scanner-agent queue ls --state quarantined)"
        )
        self.alarms[:] = [a for a in self.alarms if a is not self._quarantine_alarm] + [alarm]
        self._quarantine_alarm = alarm
