"""Outbox schema and its migrations.

Each migration is a function registered in order; :func:`migrate` applies the
ones not yet recorded in ``_migrations``, each in its own transaction with the
row that records it, so a crash mid-upgrade leaves the file at a known
version.  ``PRAGMA user_version`` mirrors the latest version for tools that
only peek at the header.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from scanner_agent.kernel import Clock, utc_now
from scanner_agent.outbox._checksum import CHECKED_FIELDS, text_checksum

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "current_version",
    "migrate",
    "migration",
]

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[tuple[int, str, Migration]] = []


def migration(version: int, name: str) -> Callable[[Migration], Migration]:
    """Register a schema migration; versions must be added in increasing order."""

    def register(fn: Migration) -> Migration:
        assert not MIGRATIONS or MIGRATIONS[-1][0] < version, "migrations out of order"
        MIGRATIONS.append((version, name, fn))
        return fn

    return register


@migration(1, "initial schema")
def _initial(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE scans (
            seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- capture order, never reused
            event_id     TEXT NOT NULL UNIQUE,               -- UUIDv7, the service's key
            code         TEXT NOT NULL,                      -- normalised trace code
            scheme       TEXT NOT NULL,                      -- cn20 | gs1 | ma
            raw          TEXT NOT NULL,                      -- as scanned (symbology id kept)
            symbology    TEXT,
            product      TEXT,
            gtin         TEXT,
            batch_no     TEXT,
            expiry       TEXT,
            serial       TEXT,
            dup_key      TEXT,                               -- code|bill|action when duplicates are refused
            action       TEXT NOT NULL,
            bill         TEXT NOT NULL,
            device_id    TEXT NOT NULL,
            source       TEXT NOT NULL,
            scanned_at   TEXT NOT NULL,                      -- RFC 3339 with offset
            state        TEXT NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'in_flight', 'delivered', 'rejected')),
            batch_id     TEXT,
            result       TEXT CHECK (result IN ('accepted', 'duplicate', 'rejected')),
            reason       TEXT,
            attempts     INTEGER NOT NULL DEFAULT 0,
            settled_at   TEXT
        )
        """
    )
    db.execute("CREATE INDEX scans_pending ON scans (state, seq)")
    db.execute("CREATE INDEX scans_batch ON scans (batch_id) WHERE batch_id IS NOT NULL")
    db.execute("CREATE INDEX scans_code ON scans (code)")
    # One statement both inserts a group and refuses duplicates: ON CONFLICT DO NOTHING on this
    # index.  NULL keys never conflict, so scans taken with the check off are always queued.
    db.execute("CREATE UNIQUE INDEX scans_dup ON scans (dup_key)")
    db.execute(
        """
        CREATE TABLE batches (
            batch_id     TEXT PRIMARY KEY,
            created_at   TEXT NOT NULL,
            lease_until  REAL NOT NULL,     -- unix time; expired leases are reclaimed
            attempts     INTEGER NOT NULL DEFAULT 0,
            events       INTEGER NOT NULL,
            last_error   TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE rejects (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            raw          TEXT NOT NULL,
            code         TEXT NOT NULL,
            reason       TEXT NOT NULL,
            verdict      TEXT NOT NULL,     -- invalid | duplicate
            device_id    TEXT NOT NULL,
            source       TEXT NOT NULL,
            scanned_at   TEXT NOT NULL
        )
        """
    )


@migration(2, "bills, pack ratios and scan removals")
def _bills(db: sqlite3.Connection) -> None:
    # A removed scan stays in the file (audit); the flag keeps it out of sync and the backlog.
    # ADD COLUMN with a constant default does not rewrite the table.
    db.execute("ALTER TABLE scans ADD COLUMN removed INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX scans_bill ON scans (bill, seq)")
    db.execute(
        """
        CREATE TABLE bills (
            number       TEXT PRIMARY KEY,                   -- unique per site; the events' bill
            type         INTEGER NOT NULL,                   -- trace platform code (101, 201...)
            action       TEXT NOT NULL,                      -- the scans' action
            device_id    TEXT NOT NULL,
            from_party   TEXT NOT NULL DEFAULT '',
            to_party     TEXT NOT NULL DEFAULT '',
            note         TEXT NOT NULL DEFAULT '',
            state        TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
            opened_at    TEXT NOT NULL,
            closed_at    TEXT
        )
        """
    )
    # At most one open bill per device and action: it is where their scans go.
    db.execute("CREATE UNIQUE INDEX bills_open ON bills (device_id, action) WHERE state = 'open'")
    db.execute(
        """
        CREATE TABLE bill_expected (
            bill         TEXT NOT NULL REFERENCES bills (number),
            product      TEXT NOT NULL,                      -- product code or GTIN-14
            name         TEXT NOT NULL DEFAULT '',
            count        INTEGER NOT NULL CHECK (count >= 0),
            PRIMARY KEY (bill, product)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE bill_log (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            bill         TEXT NOT NULL,
            at           TEXT NOT NULL,
            event        TEXT NOT NULL,  -- open|close|remove|import|upload-plan|upload|platform-status|platform-ack
            detail       TEXT NOT NULL DEFAULT ''
        )
        """
    )
    db.execute(
        """
        CREATE TABLE removals (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            seq          INTEGER NOT NULL UNIQUE,            -- the removed scan (never deleted)
            event_id     TEXT NOT NULL,
            bill         TEXT NOT NULL,
            code         TEXT NOT NULL,
            reason       TEXT NOT NULL,
            origin       TEXT NOT NULL DEFAULT '',           -- who asked: cli, tui, ...
            removed_at   TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE packs (
            key          TEXT PRIMARY KEY,                   -- a carton's code, or a product code/GTIN
            units        INTEGER NOT NULL CHECK (units >= 1),
            unit_product TEXT NOT NULL DEFAULT '',           -- what the units are ('' = same product)
            name         TEXT NOT NULL DEFAULT ''
        )
        """
    )
    db.execute(
        """
        CREATE TABLE pack_children (
            parent       TEXT NOT NULL,
            child        TEXT NOT NULL,
            PRIMARY KEY (parent, child)
        )
        """
    )
    db.execute("CREATE TABLE products (product TEXT PRIMARY KEY, name TEXT NOT NULL)")


@migration(3, "partial indexes for delivery")
def _delivery_indexes(db: sqlite3.Connection) -> None:
    # Each row passes pending -> in_flight -> delivered.  With one (state, seq) index and a
    # batch_id index over every leased row, that cost five index writes per row; these
    # partial indexes hold only the rows in their state, so it costs three, and they stay
    # small however many delivered rows are kept for audit.
    db.execute("DROP INDEX scans_pending")
    db.execute("DROP INDEX scans_batch")
    db.execute("CREATE INDEX scans_unsent ON scans (seq) WHERE state = 'pending'")
    db.execute("CREATE INDEX scans_in_flight ON scans (batch_id) WHERE state = 'in_flight'")
    db.execute("CREATE INDEX scans_dead ON scans (seq) WHERE state = 'rejected'")


@migration(4, "batches record their seq range")
def _batch_ranges(db: sqlite3.Connection) -> None:
    # A batch's rows are found by its seq range on the primary key (and batch_id) instead
    # of through an index over batch_id: that index cost two index writes per delivered
    # row (one at lease, one at settle), 10-20% of the outbox's delivery work (measured).
    db.execute("ALTER TABLE batches ADD COLUMN first_seq INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE batches ADD COLUMN last_seq INTEGER NOT NULL DEFAULT -1")
    db.execute(
        "UPDATE batches SET "
        "first_seq = COALESCE((SELECT MIN(seq) FROM scans "
        "WHERE batch_id = batches.batch_id AND state = 'in_flight'), 0), "
        "last_seq = COALESCE((SELECT MAX(seq) FROM scans "
        "WHERE batch_id = batches.batch_id AND state = 'in_flight'), -1)"
    )
    db.execute("DROP INDEX scans_in_flight")


@migration(5, "one index for code lookups and the duplicate check")
def _identity_index(db: sqlite3.Connection) -> None:
    # Code lookups (scans_code) and the duplicate check (unique scans_dup over a text key
    # code|bill|action) were two indexes.  One unique index on (code, bill, action,
    # dup_guard) serves both: dup_guard is 0 on scans whose duplicates are refused (so
    # they conflict) and NULL on the others (NULLs never conflict).  One index write
    # fewer per scan: about 2 of 11 us with random codes (measured).
    db.execute("ALTER TABLE scans ADD COLUMN dup_guard INTEGER")
    db.execute("UPDATE scans SET dup_guard = 0 WHERE dup_key IS NOT NULL")
    # The old key joined the parts with a separator no accepted code contains, so no two
    # guarded rows share an identity; should any, only the first keeps its guard.
    db.execute(
        "UPDATE scans SET dup_guard = NULL WHERE dup_guard = 0 AND seq NOT IN "
        "(SELECT MIN(seq) FROM scans WHERE dup_guard = 0 GROUP BY code, bill, action)"
    )
    db.execute("DROP INDEX scans_dup")
    db.execute("DROP INDEX scans_code")
    db.execute("CREATE UNIQUE INDEX scans_identity ON scans (code, bill, action, dup_guard)")
    db.execute("ALTER TABLE scans DROP COLUMN dup_key")


_CHECKS_WITHOUT_IN_LISTS = (
    (
        "CHECK (state IN ('pending', 'in_flight', 'delivered', 'rejected'))",
        "CHECK (state = 'pending' OR state = 'in_flight' OR state = 'delivered' "
        "OR state = 'rejected')",
    ),
    (
        "CHECK (result IN ('accepted', 'duplicate', 'rejected'))",
        "CHECK (result = 'accepted' OR result = 'duplicate' OR result = 'rejected')",
    ),
)


@migration(6, "CHECK constraints without IN lists")
def _checks_without_in_lists(db: sqlite3.Connection) -> None:
    # SQLite (3.40) evaluates a CHECK of the form "x IN (three or more constants)" by
    # building a temporary table of the constants for every row written: the two on
    # scans.state and scans.result cost about a third of a scan's insert and of each row
    # update at lease and settle (measured with callgrind, docs/performance.md).  The
    # same rules written as ORs of equalities are plain comparisons.
    #
    # The change does not touch what is stored, so it is made as SQLite documents for
    # such changes (lang_altertable.html, "making other kinds of table schema changes"):
    # edit the table's CREATE text in sqlite_schema and bump schema_version, in this
    # migration's transaction.  No table rebuild, whatever the file's size.
    for old, new in _CHECKS_WITHOUT_IN_LISTS:
        _edit_scans_sql(db, old, new)


@migration(7, "refusals aggregated")
def _rejects_aggregated(db: sqlite3.Connection) -> None:
    # One row per aggregate of refusals instead of one per refused scan (issue 16: a flood of
    # one-byte lines left 7.5 million rows): see scanner_agent/outbox/_rejects.py.  Rows
    # written before have no key (NULL never conflicts), a count of 1 and no last time
    # (their scanned_at is both).  ADD COLUMN with constants does not rewrite the table.
    db.execute("ALTER TABLE rejects ADD COLUMN count INTEGER NOT NULL DEFAULT 1")
    db.execute("ALTER TABLE rejects ADD COLUMN last_at TEXT")
    db.execute("ALTER TABLE rejects ADD COLUMN agg_key TEXT")
    db.execute("CREATE UNIQUE INDEX rejects_key ON rejects (agg_key)")


_STATE_CHECK = _CHECKS_WITHOUT_IN_LISTS[0][1]
"""The state CHECK as migration 6 left it."""


@migration(8, "row checksums and quarantine")
def _checksums(db: sqlite3.Connection) -> None:
    # Every row carries a CRC-32 of its captured fields (scanner_agent/outbox/_checksum.py),
    # checked when it is leased or exported; a row that fails it, or cannot be decoded, is
    # quarantined: its state says so and its bytes are kept.  Rows still owed to the service
    # get their checksum now (as read now: damage done before cannot be seen); delivered and
    # dead-letter rows keep NULL, which is never checked.  The state CHECK gains the new
    # state by editing the table's CREATE text, as in migration 6.
    db.execute("ALTER TABLE scans ADD COLUMN crc INTEGER")
    # Read as bytes: a row that is not UTF-8 already must not stop the upgrade (it keeps
    # NULL here, and is quarantined when read).
    db.text_factory = bytes
    try:
        rows = db.execute(
            f"SELECT seq, {', '.join(CHECKED_FIELDS)} FROM scans "  # noqa: S608 (constants)
            "WHERE state = 'pending' OR state = 'in_flight'"
        ).fetchall()
    finally:
        db.text_factory = str
    sums = []
    for seq, *values in rows:
        try:
            text = [v.decode() if isinstance(v, bytes) else v for v in values]
        except UnicodeDecodeError:
            continue
        sums.append((text_checksum(text), seq))
    db.executemany("UPDATE scans SET crc = ? WHERE seq = ?", sums)
    db.execute(
        """
        CREATE TABLE quarantine (
            seq          INTEGER PRIMARY KEY,                -- the scans row (state 'quarantined')
            found_at     TEXT NOT NULL,
            problem      TEXT NOT NULL,                      -- what was wrong with it
            content      BLOB NOT NULL                       -- every column's bytes, as found
        )
        """
    )
    _edit_scans_sql(db, _STATE_CHECK, _STATE_CHECK[:-1] + " OR state = 'quarantined')")


@migration(9, "gs1 codes stored before the canonical form")
def _legacy_codes(db: sqlite3.Connection) -> None:
    # Before issue 15 a "(" inside a GS1 value was stored as is, so "21 SN1(91)X" and
    # "21 SN1 <GS> 91 X" shared a code, and an SSCC (00) came before the GTIN: such a code is
    # not what the same scan gives today, and lookup, bill remove and the duplicate check miss
    # the row.  Which rows may be affected is known here (a GS1 scan whose raw text holds a
    # "(" or "%28", or whose code starts with (00)); their code of today comes from the raw
    # scan through the codes package, which the outbox does not import: the bill desk does
    # it at start (Outbox.recode_legacy), and the list empties.
    db.execute("CREATE TABLE legacy_codes (seq INTEGER PRIMARY KEY)")
    db.execute(
        "INSERT INTO legacy_codes (seq) SELECT seq FROM scans WHERE scheme = 'gs1' "
        "AND state != 'quarantined' AND (instr(raw, '(') > 0 OR instr(upper(raw), '%28') > 0 "
        "OR substr(code, 1, 4) = '(00)')"
    )


@migration(10, "refusals of gs1 codes stored before the canonical form")
def _legacy_refusal_codes(db: sqlite3.Connection) -> None:
    # Migration 9's leftover: a refusal aggregate (rejects) keeps the code text its scan had,
    # so one kept before issue 15 holds the old form, and lookup by today's code, and the
    # status' last refusal read back at start, show the old text. Listed on the same rule as
    # migration 9 (rejects have no scheme; a raw that is not GS1 today is left by the recode)
    # and re-derived by Outbox.recode_legacy from each aggregate's sample raw scan. A separate
    # migration, not an edit of 9: files already at 9 (their scans re-derived) need it too.
    # At most outbox.rejects_max_rows rows, the table's cap.
    db.execute("CREATE TABLE legacy_rejects (id INTEGER PRIMARY KEY)")
    db.execute(
        "INSERT INTO legacy_rejects (id) SELECT id FROM rejects WHERE instr(raw, '(') > 0 "
        "OR instr(upper(raw), '%28') > 0 OR substr(code, 1, 4) = '(00)'"
    )


def _edit_scans_sql(db: sqlite3.Connection, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the scans table's CREATE text (SQLite's documented way).

    For changes that leave what is stored as it is (lang_altertable.html, "making other
    kinds of table schema changes"): edit the text in sqlite_schema and bump
    schema_version, in the caller's transaction.  No table rebuild, whatever the file's size.
    """
    (sql,) = db.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'scans'"
    ).fetchone()
    if sql.count(old) != 1:
        raise sqlite3.DatabaseError(f"scans table has an unexpected definition: no {old!r}")
    (version,) = db.execute("PRAGMA schema_version").fetchone()
    db.execute("PRAGMA writable_schema = ON")
    try:
        db.execute(
            "UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = 'scans'",
            (sql.replace(old, new),),
        )
        db.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        db.execute("PRAGMA writable_schema = OFF")


def current_version(db: sqlite3.Connection) -> int:
    """The highest applied migration, 0 for a new file."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = db.execute("SELECT MAX(version) FROM _migrations").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite3.Connection, clock: Clock = utc_now) -> list[int]:
    """Apply pending migrations; return the versions applied (autocommit connection).

    ``clock`` gives each migration's ``applied_at``.
    """
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = current_version(db)
    applied = []
    for version, name, fn in MIGRATIONS:
        if version <= done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            fn(db)
            db.execute(
                "INSERT INTO _migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, clock().isoformat()),
            )
            db.execute(f"PRAGMA user_version = {int(version)}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


SCHEMA_VERSION = MIGRATIONS[-1][0]
"""The version this build writes."""
