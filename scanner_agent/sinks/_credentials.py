"""The sinks' credentials: a bearer token or an app secret, from a file or a variable.

One rule refuses a bad one everywhere (``run``, its reload, ``check-config``,
``doctor``): a credential is :data:`CREDENTIAL_RULE`, a file holding one is a
regular file no other user may read, and no error ever shows any of its bytes.
"""

from __future__ import annotations

import os
import stat

from scanner_agent.kernel import CredentialError

__all__ = [
    "CREDENTIAL_RULE",
    "MAX_SECRET_BYTES",
    "check_secret",
    "open_to_everyone",
    "read_secret_file",
    "read_token",
]

CREDENTIAL_RULE = "one line of printable ASCII (a single trailing newline allowed)"
"""What a token or secret file (or variable) must hold: it goes into an HTTP header or a
signature as it is, so a second line, a control character or a non-ASCII byte would
either break the request (and be echoed in the error) or sign with something else."""
MAX_SECRET_BYTES = 64 * 1024
"""A credential file larger than this is refused unread (bounded input)."""


def check_secret(raw: bytes, key: str, where: str) -> str:
    """``raw`` (a file's or variable's bytes) as a secret that follows :data:`CREDENTIAL_RULE`.

    The error says what is wrong with the value, never any of its bytes: the
    message goes to logs, ``doctor`` and ``check-config``.

    Raises:
        ConfigError: naming ``key`` and ``where`` (the file or variable).
    """
    body = raw[:-1] if raw.endswith(b"\n") else raw
    problem = ""
    lines = body.count(b"\n") + 1
    if not body.strip():
        problem = "is empty" if not body else "is blank (white space only)"
    elif lines > 1:
        problem = f"holds {lines} lines"
    elif body.endswith(b"\r"):
        problem = "ends with a carriage return (saved with Windows line ends?)"
    else:
        bad = next((i for i, byte in enumerate(body) if not 0x20 <= byte <= 0x7E), None)
        if bad is not None:
            problem = f"holds a byte that is not printable ASCII (at offset {bad})"
        elif body != body.strip(b" "):
            problem = "starts or ends with a space"
    if problem:
        raise CredentialError(
            f"{key}: {where} {problem}; it must hold {CREDENTIAL_RULE}", problem="malformed"
        )
    return body.decode("ascii")


def read_secret_file(path: str, key: str) -> str:
    """A credential from ``path``: readable by no one but its owner and group, one clean line.

    The mode check is the one ``doctor`` recommends for the token (0640 or 0600):
    a secret readable by "other" is a secret shared with every process on the box.
    The mode is taken from the open file, so it is the file read that was checked.

    Raises:
        ConfigError: naming ``key``, when the file cannot be read, is too open, is
            larger than :data:`MAX_SECRET_BYTES` or breaks :data:`CREDENTIAL_RULE`.
    """
    try:
        # O_NONBLOCK: a named pipe must not hold the reader until someone writes to it.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise _unreadable(key, path, exc) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CredentialError(
            f"{key}: {path!r} is not a regular file ({_file_kind(st.st_mode)}); "
            "name the file that holds the secret",
            problem="not_file",
        )
    with os.fdopen(fd, "rb") as f:
        too_open = open_to_everyone(st.st_mode)
        if too_open:
            raise CredentialError(
                f"{key}: {path!r} is {too_open}; chmod o-rwx it (0640 or 0600)",
                problem="too_open",
            )
        try:
            raw = f.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise _unreadable(key, path, exc) from exc
    if len(raw) > MAX_SECRET_BYTES:
        raise CredentialError(
            f"{key}: {path!r} is larger than {MAX_SECRET_BYTES} bytes", problem="malformed"
        )
    return check_secret(raw, key, repr(path))


def open_to_everyone(mode: int) -> str:
    """What every user may do to a file of ``mode`` ("readable by every user (mode 0644)"),
    or "" when its "other" bits are clear: the words of every refusal of a file too open."""
    other = mode & 0o007
    if not other:
        return ""
    may = [
        word for bit, word in ((4, "readable"), (2, "writable"), (1, "executable")) if other & bit
    ]
    said = " and ".join([", ".join(may[:-1]), may[-1]] if len(may) > 1 else may)
    return f"{said} by every user (mode {mode & 0o7777:04o})"


def _file_kind(mode: int) -> str:
    """What a path that is not a regular file is, in words."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), stat.filemode(mode))


def _unreadable(key: str, path: str, exc: OSError) -> CredentialError:
    problem = "missing" if isinstance(exc, FileNotFoundError) else "unreadable"
    return CredentialError(f"{key}: failed to read {path!r}: {exc.strerror}", problem=problem)


def read_token(token_file: str, token_env: str, section: str) -> str:
    """A bearer token from ``<section>.token_file`` or ``<section>.token_env``; empty when
    neither is set (the sink then sends no ``Authorization`` header).

    Raises:
        ConfigError: as :func:`read_secret_file`, or the variable is unset or breaks
            :data:`CREDENTIAL_RULE`.
    """
    if token_file:
        return read_secret_file(token_file, f"{section}.token_file")
    if token_env:
        value = os.environb.get(os.fsencode(token_env))
        if value is None:
            raise CredentialError(
                f"{section}.token_env: environment variable {token_env!r} is not set",
                problem="unset",
            )
        return check_secret(value, f"{section}.token_env", f"environment variable {token_env!r}")
    return ""
