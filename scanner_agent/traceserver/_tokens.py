"""One credential per dock: tokens issued and revoked by ``trace-server token``, kept as hashes.

A token reads ``dock.<id>.<secret>``: ``id`` (16 hex digits) names its row
and is safe to show and log; ``secret`` is 256 random bits.  The database
keeps only the SHA-256 of the secret (a slow password hash buys nothing for
a random 256-bit secret), so a copy of the database lets no one send
batches.  The presented secret's hash is compared in constant time.  A
token is bound to its device: a batch whose ``device_id`` is another dock's
is refused (403, :mod:`._ingest`).

Both stores keep them in a ``device_tokens`` table of the same columns (the
SQLite store's schema, PostgreSQL's migration 2); the rules are here once,
over a connection of either driver, and only the SQL's placeholders and time
functions differ (:class:`Dialect`).  :mod:`._backends` opens the connection
for ``trace-server token``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final, Protocol

__all__ = [
    "PG",
    "PREFIX",
    "SQLITE",
    "Connection",
    "Dialect",
    "IssuedToken",
    "device_for",
    "issue",
    "listing",
    "revoke",
]

PREFIX: Final = "dock."
"""How every dock token starts (the shared demo token never looks like one)."""
_TOKEN = re.compile(r"dock\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as :func:`issue_token` made it: the secret is shown this once."""

    token_id: str
    device_id: str
    token: str


@dataclass(frozen=True, slots=True)
class Dialect:
    """The token statements in one database's SQL."""

    insert: str
    revoke: str
    listing: str
    lookup: str


PG: Final = Dialect(
    insert="INSERT INTO device_tokens (token_id, device_id, secret_sha256) VALUES (%s, %s, %s)",
    revoke="UPDATE device_tokens SET revoked_at = now() WHERE token_id = %s AND revoked_at IS NULL",
    listing="SELECT token_id, device_id, created_at::text, revoked_at::text"
    " FROM device_tokens ORDER BY created_at, token_id",
    lookup="SELECT device_id, secret_sha256 FROM device_tokens"
    " WHERE token_id = %s AND revoked_at IS NULL",
)
SQLITE: Final = Dialect(
    insert="INSERT INTO device_tokens (token_id, device_id, secret_sha256, created_at)"
    " VALUES (?, ?, ?, strftime('%Y-%m-%d %H:%M:%f+00', 'now'))",
    revoke="UPDATE device_tokens SET revoked_at = strftime('%Y-%m-%d %H:%M:%f+00', 'now')"
    " WHERE token_id = ? AND revoked_at IS NULL",
    listing="SELECT token_id, device_id, created_at, revoked_at"
    " FROM device_tokens ORDER BY created_at, token_id",
    lookup="SELECT device_id, secret_sha256 FROM device_tokens"
    " WHERE token_id = ? AND revoked_at IS NULL",
)


class Connection(Protocol):
    """What both drivers' connections offer: ``execute`` returning a cursor."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def issue(conn: Connection, sql: Dialect, device_id: str) -> IssuedToken:
    """Issue a new token for ``device_id`` (a dock may hold several, e.g. during a rotation)."""
    if not device_id or not device_id.isprintable():
        raise ValueError("the device id must be a non-empty printable string")
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    conn.execute(sql.insert, (token_id, device_id, _digest(secret)))
    return IssuedToken(token_id, device_id, f"{PREFIX}{token_id}.{secret}")


def revoke(conn: Connection, sql: Dialect, token_id: str) -> bool:
    """Revoke the token ``token_id`` (effective at the next request); False if none was live."""
    return bool(conn.execute(sql.revoke, (token_id,)).rowcount == 1)


def listing(conn: Connection, sql: Dialect) -> list[tuple[str, str, str, str | None]]:
    """Every token's ``(id, device, created_at, revoked_at)``, oldest first: never a secret."""
    rows = conn.execute(sql.listing).fetchall()
    return [(str(a), str(b), str(c), None if d is None else str(d)) for a, b, c, d in rows]


def device_for(conn: Connection, presented: str, sql: Dialect = PG) -> str | None:
    """The device of the live token ``presented``, or None (unknown, revoked or wrong secret)."""
    match = _TOKEN.fullmatch(presented)
    if match is None:
        return None
    token_id, secret = match.groups()
    row = conn.execute(sql.lookup, (token_id,)).fetchone()
    if row is None:
        return None
    stored = row[1]
    if not isinstance(stored, bytes) or not hmac.compare_digest(_digest(secret), stored):
        return None
    return str(row[0])
