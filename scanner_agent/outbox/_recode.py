"""GS1 codes an earlier version stored, re-derived from their raw scans (outbox migration 9).

Before issue 15 the stored code of a GS1 scan could be ambiguous: a ``(`` inside a
value was not escaped (``(21)SN1(91)X`` was both a serial ``SN1(91)X`` and a
serial ``SN1`` with an AI 91), and an SSCC (00) came before the GTIN. Migration 9
lists the rows that may hold such a code; :meth:`OutboxRecodes.recode_legacy`
gives each the code the same scan gets today, computed by the caller from the
raw scan (the codes package's rule: the outbox does not parse codes), so that
``lookup``, ``bill remove --code`` and the duplicate check find it again.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from scanner_agent.outbox._checksum import CHECKED_FIELDS, text_checksum
from scanner_agent.outbox._core import OutboxCore

__all__ = ["OutboxRecodes"]

log = logging.getLogger(__name__)

_CODE = CHECKED_FIELDS.index("code")
_RAW = CHECKED_FIELDS.index("raw")


class OutboxRecodes(OutboxCore):
    """The one-time re-derivation of the codes migration 9 listed."""

    def recode_legacy(self, derive: Callable[[str], str | None]) -> int:
        """Give each listed row the code ``derive(raw)`` says, then empty the list.

        ``derive`` returns the stored code the raw scan gets today, or None when it
        is no longer a GS1 trace code (the row then keeps its code: it was taken,
        and is reported as it was). A row whose checksum does not match is left as
        it is, for the check on lease to quarantine; a row whose new code another
        row of the same bill already holds (the carton scanned again after the
        upgrade) keeps its old one, with a warning. Returns the rows changed.
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
        return changed
