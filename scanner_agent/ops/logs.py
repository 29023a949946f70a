"""Logging set-up: readable lines on a terminal, one JSON object per line otherwise.

journald keeps stderr; JSON there lets a log shipper pick out device, bill
and event ids without regexes (pass them as ``extra={"device": ..., "bill":
..., "event_id": ...}``).  When stderr *is* the journal (systemd sets
``JOURNAL_STREAM`` to its ``device:inode``), every line starts with the
record's syslog priority, ``<4>`` for a warning (sd-daemon(3)): journald
takes it off the line and files the entry under that priority, so
``journalctl -u scanner-agent -p warning`` shows exactly the warnings and
errors.  Elsewhere (a terminal, a pipe, a file) lines are left as they are.

Tokens never reach a log line.  The config keeps only the token's file or
variable name and the HTTP client adds the Authorization header itself, but a
mistake (an exception text echoing a header, a debug line printing a
request) must not leak one either: :func:`install_redaction` wraps the log
record factory so every record, whatever handler receives it (stderr,
journald, pytest's ``caplog``), has each registered secret and every
``Authorization: Bearer ...`` value replaced by ``<redacted>`` before any
handler sees it.

>>> r = Redactor()
>>> r.add_secret("s3cr3t-t0ken")
>>> r.redact("sent Authorization: Bearer abc.def with s3cr3t-t0ken")
'sent Authorization: Bearer <redacted> with <redacted>'
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

EXTRA_KEYS = ("device", "bill", "event_id", "source", "batch_id")
"""``extra=`` keys copied into JSON lines (and redacted like the message)."""
REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 6
"""Shorter "secrets" are not redacted: replacing every ``abc`` would garble logs."""

_BEARER = re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=\-]+)")


class Redactor:
    """Replaces registered secrets and bearer credentials in text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add_secret(self, secret: str) -> None:
        """Redact ``secret`` from now on (blank or very short values are ignored)."""
        secret = secret.strip()
        if len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret not in self._secrets:
                # Longest first, so a token containing another is replaced whole.
                self._secrets = tuple(sorted({*self._secrets, secret}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every secret and bearer value replaced by ``<redacted>``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "earer" in text or "EARER" in text:
            text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    def needs(self, text: str) -> bool:
        """Whether :meth:`redact` would change ``text``."""
        return self.redact(text) != text

    def redact_record(self, record: logging.LogRecord) -> None:
        """Rewrite a record in place: message, known extras and exception text."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string; logging reports it later
            message = str(record.msg)
        clean = self.redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        for key in EXTRA_KEYS:
            value = getattr(record, key, None)
            if isinstance(value, str):
                setattr(record, key, self.redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if self.needs(text):
                record.exc_text = self.redact(text)
                record.exc_info = None


_redactor = Redactor()
_install_lock = threading.Lock()


def redactor() -> Redactor:
    """The process's redactor (logging is process-wide, so is this)."""
    return _redactor


def add_secret(secret: str) -> None:
    """Never log ``secret`` (the daemon calls this with each token it reads)."""
    install_redaction()
    _redactor.add_secret(secret)


def install_redaction(secrets: Iterable[str] = ()) -> Redactor:
    """Wrap the log record factory so every record is redacted at creation.

    Idempotent: installing twice wraps once.
    """
    with _install_lock:
        current = logging.getLogRecordFactory()
        if not getattr(current, "_scanner_agent_redacting", False):
            logging.setLogRecordFactory(_redacting_factory(current))
    for secret in secrets:
        _redactor.add_secret(secret)
    return _redactor


def _redacting_factory(inner: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = inner(*args, **kwargs)
        _redactor.redact_record(record)
        return record

    factory._scanner_agent_redacting = True  # type: ignore[attr-defined]
    return factory


class RedactingFilter(logging.Filter):
    """The same redaction as a handler filter (``setup_logging`` puts it on stderr).

    ``extra=`` values are set on a record after the factory ran, so this
    filter (and :class:`JsonFormatter`) redacts them again at output time.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        _redactor.redact_record(record)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and known extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as a JSON line."""
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in EXTRA_KEYS:
            if hasattr(record, key):
                value = getattr(record, key)
                # Extras are set after the record factory ran: redact them here.
                out[key] = _redactor.redact(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 7 debug, 6 info, 4 warning, 3 error, 2 critical.

    Levels between the named ones take the priority of the named level below
    them (logging's own rule for ``levelname``), so a custom level 25 is info.
    """
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def stderr_is_journal(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """Whether ``fd`` is the journal stream systemd connected (systemd.exec(5), ``JOURNAL_STREAM``).

    systemd sets ``JOURNAL_STREAM=<device>:<inode>`` (decimal) for a service
    whose stdout or stderr goes to the journal; the variable is inherited by
    children whose stderr may be redirected elsewhere, so the numbers must match
    the descriptor's own ``fstat``.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


_LINE_ENDS = re.compile("[\n\0]")
"""Where journald ends a line of a stream: LF, and NUL."""


def with_priority(text: str, levelno: int) -> str:
    """``text`` with ``<N>`` before each line (journald's line ends: LF and NUL)."""
    prefix = f"<{syslog_priority(levelno)}>"
    return "\n".join(prefix + line for line in _LINE_ENDS.split(text))


def for_stderr(text: str, levelno: int) -> str:
    """``text`` for a direct write to stderr: prefixed per line when stderr is the journal.

    For what bypasses logging, such as the CLI's one-line ``error:`` before it exits.
    """
    return with_priority(text, levelno) if stderr_is_journal() else text


class PriorityFormatter(logging.Formatter):
    """Another formatter's output with ``<N>`` (the syslog priority) before each of its lines.

    A traceback spans many lines and journald files each line as its own entry,
    so each gets the prefix, not only the first.
    """

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's text, every line prefixed."""
        return with_priority(self.inner.format(record), record.levelno)


def setup_logging(level: str = "info", *, json_lines: bool | None = None) -> None:
    """Configure the root logger on stderr (JSON when stderr is not a TTY), redacting secrets.

    Under the journal each line carries its priority (:class:`PriorityFormatter`),
    and Python warnings become log records so they carry one too.
    """
    install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    formatter: logging.Formatter
    if json_lines:
        formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    journal = stderr_is_journal(fd=sys.stderr.fileno()) if _has_fd(sys.stderr) else False
    handler.setFormatter(PriorityFormatter(formatter) if journal else formatter)
    if journal:
        logging.captureWarnings(True)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    # httpx logs every request at INFO; that is noise at a warehouse's scan rate.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _has_fd(stream: Any) -> bool:
    """Whether ``stream`` has a real file descriptor (pytest's capture has none)."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def set_level(level: str) -> None:
    """Change the root log level (at start and on reload)."""
    logging.getLogger().setLevel(level.upper())
