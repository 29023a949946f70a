"""GS1 codes an earlier version stored, re-derived from their raw scans (outbox migration 9).

Before issue 15 the stored code of a GS1 scan could be ambiguous: a ``(`` inside a
value was not escaped (``(21)SN1(91)X`` was both a serial ``SN1(91)X`` and a
serial ``SN1`` with an AI 91), and an SSCC (00) came before the GTIN. Migration 9
lists the rows that may hold such a code; :meth:`OutboxRecodes.recode_legacy`
gives each the code the same scan gets today, computed by the caller from the
raw scan (the codes package's rule: the outbox does not parse codes), so that
``lookup``, ``bill remove --code`` and the duplicate check find it again.

Refusals kept then are aggregates (``rejects``) holding the code text of their
sample scan; migration 10 lists those that may hold an old form, and the same
call re-derives each from its sample's raw scan, so that ``lookup`` lists the
duplicates refused before the upgrade and the status' last refusal, read back at
start, shows today's code.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from scanner_agent.outbox._checksum import CHECKED_FIELDS, text_checksum
from scanner_agent.outbox._core import OutboxCore
from scanner_agent.outbox._rejects import recode_reject

__all__ = ["OutboxRecodes"]

log = logging.getLogger(__name__)

_CODE = CHECKED_FIELDS.index("code")
_RAW = CHECKED_FIELDS.index("raw")
_REFUSALS_PER_STEP = 500
"""Listed refusals re-derived per transaction: their raw scans are held in memory at once."""


class OutboxRecodes(OutboxCore):
    """The one-time re-derivation of the codes migration 9 listed."""

    def recode_legacy(self, derive: Callable[[str], str | None]) -> int:
        """Give each listed row the code ``derive(raw)`` says, then empty the list.

        ``derive`` returns the stored code the raw scan gets today, or None when it
        is no longer a GS1 trace code (the row then keeps its code: it was taken,
        and is reported as it was). A row whose checksum does not match is left as
        it is, for the check on lease to quarantine; a row whose new code another
        row of the same bill already holds (the carton scanned again after the
        upgrade) keeps its old one, with a warning.

        Then the refusal aggregates migration 10 listed, each from its sample's raw
        scan (:meth:`_recode_refusals`). Returns the scans and refusal aggregates
        changed.
        """
        with self.atomic() as db:
            rows = db.execute(
                "SELECT s.seq, s.crc, "  # noqa: S608 (constant column names)
                + ", ".join(f"s.{f}" for f in CHECKED_FIELDS)
                + " FROM legacy_codes l JOIN scans s ON s.seq = l.seq"
            ).fetchall()
            changed = 0
            for seq, crc, *values in rows:
                new = derive(values[_RAW])
                if new is None or new == values[_CODE]:
                    continue
                if crc is not None and crc != text_checksum(values):
                    continue
                values[_CODE] = new
                try:
                    db.execute(
                        "UPDATE scans SET code = ?, crc = ? WHERE seq = ?",
                        (new, None if crc is None else text_checksum(values), seq),
                    )
                except sqlite3.IntegrityError:
                    log.warning(
                        "outbox %s: scan %d keeps its old code: %s is held twice",
                        self.path,
                        seq,
                        new,
                    )
                    continue
                db.execute("UPDATE removals SET code = ? WHERE seq = ?", (new, seq))
                changed += 1
            db.execute("DELETE FROM legacy_codes")
        if changed:
            log.info("outbox %s: %d GS1 codes of an earlier version re-derived", self.path, changed)
        return changed + self._recode_refusals(derive)

    def _recode_refusals(self, derive: Callable[[str], str | None]) -> int:
        """Give each listed refusal aggregate the code ``derive`` says for its sample raw scan.

        An aggregate keeps one sample, its first refusal; the others it counts were of
        the same code (duplicates are aggregated per code), or are kept only as a count
        (any other verdict), so the sample's code is the aggregate's. Where ``derive``
        gives None (the raw scan is not a GS1 trace code today: a refusal of a malformed
        scan, or one whose sample was never kept whole) the aggregate keeps its old code
        text, as it was refused; ``lookup`` by today's form does not list it. A new code
        another aggregate already holds merges the two (:func:`recode_reject`).

        The list is at most the table's cap (``outbox.rejects_max_rows``) and is worked
        through :data:`_REFUSALS_PER_STEP` rows per transaction, each step taking its rows
        off the list: memory stays bounded, and a stop half way resumes at the next start.
        Returns the aggregates changed.
        """
        changed = 0
        while True:
            with self.atomic() as db:
                rows = db.execute(
                    "SELECT l.id, r.raw, r.code FROM legacy_rejects l "
                    "LEFT JOIN rejects r ON r.id = l.id ORDER BY l.id LIMIT ?",
                    (_REFUSALS_PER_STEP,),
                ).fetchall()
                if not rows:
                    break
                for row_id, raw, code in rows:
                    new = None if raw is None else derive(raw)  # None: capped or pruned since
                    if new is not None and new != code and recode_reject(db, row_id, new):
                        changed += 1
                db.execute("DELETE FROM legacy_rejects WHERE id <= ?", (rows[-1][0],))
        if changed:
            log.info(
                "outbox %s: %d refusals of GS1 codes of an earlier version re-derived",
                self.path,
                changed,
            )
        return changed
