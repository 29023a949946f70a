"""What ``run`` checks before it touches anything; ``check-config`` runs the same function.

A config can be valid as text (:mod:`scanner_agent.config`) and still be one
the agent cannot run: a token file that is missing, readable by everyone or
two lines long, an outbox directory its user cannot enter, a directory where
the outbox file should be, another program's database there, a control
socket directory it cannot write, a source whose driver library this install
lacks (python-evdev for a wedge source).  :func:`preflight` checks all of that
against the system as a given user (:class:`RunAs`) and raises a
:class:`Refusal` naming the key; ``run`` calls it first (so a refused config
creates, migrates and logs nothing) and ``check-config`` calls it too, so
"check-config says OK" means "run will start".

It only looks: it reads the credential (the same reader the daemon uses) and
the outbox file's header, and writes nothing.  ``doctor`` uses the same
checks for its outbox and credential lines.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from drivers.registry import LISTEN_ANY
from scanner_agent.config import AgentConfig, config_warnings, read_credential
from scanner_agent.kernel import ConfigError, OutboxError, ScannerAgentError, parse_host_port
from scanner_agent.ops.layout import SERVICE_USER, SUPPLEMENTARY_GROUPS
from scanner_agent.outbox import outbox_path_problem
from scanner_agent.sinks import open_to_everyone

__all__ = ["Refusal", "RunAs", "check_outbox", "check_user", "lexists", "preflight"]

MAX_SOCKET_PATH = 107
"""Longest UNIX socket path in bytes: ``sun_path`` holds 108 on Linux, with its NUL."""


class Refusal(ConfigError):
    """A config ``run`` would refuse: ``str()`` is ``[where: ]key: message``; ``hint`` says
    what to do about it."""

    def __init__(self, key: str, message: str, hint: str = "", *, where: str = "") -> None:
        super().__init__(f"{where}: {key}: {message}" if where else f"{key}: {message}")
        self.key = key
        self.message = message
        self.hint = hint

    def at(self, where: str) -> Refusal:
        """The same refusal, saying which config file it is about."""
        return Refusal(self.key, self.message, self.hint, where=where)


@dataclass(frozen=True, slots=True)
class RunAs:
    """The user the agent runs as, for the permission checks."""

    name: str
    uid: int
    gids: frozenset[int]
    is_self: bool = False
    """This process: the kernel answers (``os.access``, so ACLs and root count too)."""

    @classmethod
    def me(cls) -> RunAs:
        """The user running this process (``run`` checks as itself)."""
        uid = os.geteuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = f"uid {uid}"
        return cls(name, uid, frozenset({os.getegid(), *os.getgroups()}), is_self=True)

    @classmethod
    def service(cls, name: str = SERVICE_USER) -> RunAs | None:
        """``name`` as the unit runs it: its groups plus the unit's ``SupplementaryGroups=``
        (:data:`SUPPLEMENTARY_GROUPS`); None when there is no such user."""
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None
        gids = {pw.pw_gid}
        for g in grp.getgrall():
            if name in g.gr_mem or g.gr_name in SUPPLEMENTARY_GROUPS:
                gids.add(g.gr_gid)
        return cls(name, pw.pw_uid, frozenset(gids))

    @property
    def group(self) -> str:
        """The user's primary group name (for hints)."""
        try:
            return grp.getgrgid(pwd.getpwuid(self.uid).pw_gid).gr_name
        except KeyError:
            return self.name

    def may(self, path: Path, want: int) -> bool:
        """Whether this user may ``want`` (``os.R_OK | os.W_OK | os.X_OK``) on ``path``,
        every directory above it included (each must be enterable)."""
        if self.is_self:
            return os.access(path, want, effective_ids=os.access in os.supports_effective_ids)
        if self.uid == 0:
            return True
        parents = list(reversed(path.absolute().parents))
        return all(self._bits(p, os.X_OK) for p in parents) and self._bits(path, want)

    def _bits(self, path: Path, want: int) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        if st.st_uid == self.uid:
            shift = 6
        elif st.st_gid in self.gids:
            shift = 3
        else:
            shift = 0
        bits = sum(b for w, b in ((os.R_OK, 4), (os.W_OK, 2), (os.X_OK, 1)) if want & w)
        return (st.st_mode >> shift) & bits == bits


def check_user(name: str | None = None) -> RunAs:
    """Whom ``check-config`` checks for: ``name`` if given; as root, the service user
    (what systemd runs the agent as) when it exists; else the current user.

    Raises:
        ScannerAgentError: ``name`` is not a user here.
    """
    if name:
        user = RunAs.service(name)
        if user is None:
            raise ScannerAgentError(f"check-config --user: no user {name!r} on this box")
        return user
    if os.geteuid() == 0:
        return RunAs.service() or RunAs.me()
    return RunAs.me()


def preflight(cfg: AgentConfig, user: RunAs, config_path: str | Path) -> list[str]:
    """Refuse what ``run`` cannot run as ``user``; the warnings of a config it can run.

    ``config_path`` is the file ``cfg`` was read from: one every user may write is
    refused, since whoever writes it chooses where the token goes on the next reload;
    every error names it, as :func:`~scanner_agent.config.load_config`'s do.

    Raises:
        Refusal: the first problem, naming the file, the key and what to do.
        ConfigError: the credential cannot be read or is refused (its reader's error).
    """
    try:
        _check_config_file(Path(config_path))
        warnings = config_warnings(cfg)
        _check_drivers(cfg)
        _check_credentials(cfg, user)
        check_outbox(cfg, user)
        warnings.extend(_check_control(cfg, user))
        _check_sources(cfg, user)
    except Refusal as exc:
        raise exc.at(str(config_path)) from None
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    return warnings


def _check_config_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # it was just read: a path that vanished since is the loader's business
    if stat.S_ISREG(mode) and mode & stat.S_IWOTH:
        raise Refusal(
            "config file",
            f"{str(path)!r} is {open_to_everyone(mode)}: any user could point the agent "
            "at another service and take its token",
            f"`sudo chmod o-w {path}` (0640, group {SERVICE_USER}, or 0644)",
        )


# -- drivers -------------------------------------------------------------------------------


def _check_drivers(cfg: AgentConfig) -> None:
    """Each source's driver and the libraries it imports when it starts load here
    (:func:`scanner_agent.ops.roles.check_driver`): a slim install without python-evdev is told
    so by ``check-config``, and ``run`` refuses before it creates anything."""
    from scanner_agent.ops.roles import DriverUnavailable, check_driver

    for i, src in enumerate(cfg.sources):
        try:
            check_driver(src.type, src.options, f"source[{i}]")
        except DriverUnavailable as exc:
            raise Refusal(exc.key, exc.message, exc.hint) from exc


# -- credentials -----------------------------------------------------------------------


def _credential_files(cfg: AgentConfig) -> list[tuple[str, str]]:
    """``(key, path)`` of each file the sink of ``sync.protocol`` reads."""
    protocol = cfg.sync.protocol
    out: list[tuple[str, str]] = []
    if protocol == "alihealth":
        out.append(("alihealth.app_secret_file", cfg.alihealth.app_secret_file))
    elif protocol == "epcis":
        out.append(("epcis.token_file", cfg.epcis.token_file))
    else:
        out.append(("sync.token_file", cfg.sync.token_file))
    if protocol != "alihealth" and cfg.sync.verify_tls:
        out += [
            ("sync.ca_bundle", cfg.sync.ca_bundle),
            ("sync.client_cert", cfg.sync.client_cert),
            ("sync.client_key", cfg.sync.client_key),
        ]
    return [(key, path) for key, path in out if path]


def _check_credentials(cfg: AgentConfig, user: RunAs) -> None:
    for key, name in _credential_files(cfg):
        path = Path(name)
        if _is_file(path) and not user.may(path, os.R_OK):
            raise Refusal(
                key,
                f"{user.name} cannot read {name!r} ({_describe(path)})",
                f"give the file to the service's group: `sudo chgrp {user.group} {name}` "
                f"and `sudo chmod 0640 {name}`",
            )
    read_credential(cfg)
    key_file = cfg.sync.client_key
    if key_file and cfg.sync.protocol != "alihealth" and _is_file(Path(key_file)):
        too_open = open_to_everyone(Path(key_file).stat().st_mode)
        if too_open:
            raise Refusal(
                "sync.client_key",
                f"{key_file!r} is {too_open}",
                f"`sudo chmod o-rwx {key_file}` (0640 or 0600)",
            )
    if cfg.sync.protocol != "alihealth":
        from scanner_agent.sync import build_ssl_context  # httpx; only once the rest passed

        build_ssl_context(cfg.sync)


# -- the outbox ---------------------------------------------------------------------------


def check_outbox(cfg: AgentConfig, user: RunAs) -> None:
    """``outbox.path``: its directory enterable and writable by ``user`` (or creatable),
    and nothing there but an outbox, read and writable by ``user``.

    Raises:
        Refusal: naming ``outbox.path``.
    """
    key = "outbox.path"
    path = Path(cfg.outbox.path)
    problem = _directory_problem(path.parent, user)
    if problem:
        raise Refusal(
            key,
            problem,
            f"`sudo install -d -o {user.name} -g {user.group} -m 0750 {path.parent}`, "
            f"or set outbox.path to a directory {user.name} may write",
        )
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if _is_file(p) and not user.may(p, os.R_OK | os.W_OK):
            raise Refusal(
                key,
                f"{user.name} cannot read and write {str(p)!r} ({_describe(p)})",
                f"`sudo chown {user.name}:{user.group} {path}*`",
            )
    try:
        problem = outbox_path_problem(path)
    except OutboxError as exc:
        raise Refusal(key, str(exc)) from None
    if problem:
        raise Refusal(key, f"{str(path)!r} {problem}")


def _directory_problem(directory: Path, user: RunAs) -> str:
    """Why ``user`` cannot create files in ``directory`` (or create it: the outbox open
    makes a missing one); empty when it can."""
    existing = directory.absolute()
    while not lexists(existing) and existing != existing.parent:
        existing = existing.parent
    for step in [*reversed(existing.parents), existing]:
        if not user.may(step, os.X_OK):
            return f"{user.name} cannot enter {str(step)!r} ({_describe(step)})"
    if not user.may(existing, os.W_OK | os.X_OK):
        what = "create files in" if existing == directory.absolute() else "create a directory in"
        return f"{user.name} cannot {what} {str(existing)!r} ({_describe(existing)})"
    return ""


# -- the control socket ---------------------------------------------------------------------


def _check_control(cfg: AgentConfig, user: RunAs) -> list[str]:
    control = cfg.control
    if not control.socket:
        return []
    if control.group:
        try:
            gid = grp.getgrnam(control.group).gr_gid
        except KeyError:
            raise Refusal(
                "control.group",
                f"no group {control.group!r} on this box",
                f"`sudo groupadd {control.group}` and add the clerks to it, "
                "or leave control.group empty",
            ) from None
        if user.uid != 0 and gid not in user.gids:
            raise Refusal(
                "control.group",
                f"{user.name} is not in group {control.group!r}, so it cannot give the socket "
                "that group",
                f"`sudo usermod -aG {control.group} {user.name}`",
            )
    path = Path(control.socket)
    size = len(os.fsencode(control.socket))
    if size > MAX_SOCKET_PATH:
        raise Refusal(
            "control.socket",
            f"{control.socket!r} is too long for a UNIX socket ({size} bytes, at most "
            f"{MAX_SOCKET_PATH})",
            "choose a shorter path, e.g. /run/scanner-agent/control.sock",
        )
    try:
        mode = path.lstat().st_mode
    except OSError:
        mode = stat.S_IFSOCK  # nothing there yet, or closed to us: the directory check says
    if not stat.S_ISSOCK(mode):
        raise Refusal(
            "control.socket",
            f"{control.socket!r} exists and is not a socket ({stat.filemode(mode)})",
            "remove it, or choose another control.socket",
        )
    directory = path.parent
    if not lexists(directory):
        return [
            f"control.socket: directory {str(directory)!r} does not exist: the control "
            "interface stays off unless it is created (the unit's RuntimeDirectory= does)"
        ]
    problem = _directory_problem(directory, user)
    if problem:
        raise Refusal(
            "control.socket",
            problem,
            f"`sudo chown {user.name}: {directory}`, or set control.socket to a path in a "
            f"directory {user.name} may write (empty turns the interface off)",
        )
    return []


# -- sources --------------------------------------------------------------------------------


def _check_sources(cfg: AgentConfig, user: RunAs) -> None:
    """What a source needs from the system to start: an address of this box to listen on
    (not taken by another source) and, for a replay source, a file its user may read.

    A port held by another process is no refusal: ``check-config`` runs before
    ``systemctl reload`` while the running agent holds its own ports, so the
    address is tried with port 0.
    """
    taken: list[tuple[int, frozenset[tuple[int, str]], str]] = []
    for i, src in enumerate(cfg.sources):
        where = f"source[{i}]"
        listen = src.options.get("listen")
        if isinstance(listen, str):
            host, port = parse_host_port(listen, f"{where}.listen", default_host=LISTEN_ANY)
            addresses = _listen_addresses(host, f"{where}.listen")
            for other_port, other, other_where in taken:
                if port and port == other_port and _overlap(addresses, other):
                    raise Refusal(
                        f"{where}.listen",
                        f"{listen!r}: {other_where} listens there already",
                        "give each tcp source its own port",
                    )
            taken.append((port, addresses, where))
        path = src.options.get("path")
        if src.type == "replay" and isinstance(path, str) and path != "-":
            _check_readable(Path(path), f"{where}.path", user)
        device = src.options.get("device")
        if src.type == "camera" and isinstance(device, str):
            _check_camera_files(device, f"{where}.device", user)


_WILDCARDS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - the addresses that mean "every one"


def _overlap(one: frozenset[tuple[int, str]], other: frozenset[tuple[int, str]]) -> bool:
    """Whether two sets of ``(family, address)`` cannot both be bound on one port: an address
    in both, or a family's wildcard beside any address of that family (the agent's IPv6
    sockets are IPv6-only, so ``0.0.0.0`` and ``::`` do not clash)."""
    return any(
        fa == fb and (a == b or a in _WILDCARDS or b in _WILDCARDS)
        for fa, a in one
        for fb, b in other
    )


def _listen_addresses(host: str, key: str) -> frozenset[tuple[int, str]]:
    """The ``(family, address)`` pairs ``host`` names, each one this box can listen on.

    Raises:
        Refusal: ``host`` does not resolve, or names an address that is not this box's.
    """
    try:
        found = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise Refusal(
            key, f"cannot listen on {host!r}: {exc}", "use an address of this box, e.g. 0.0.0.0"
        ) from None
    addresses = set()
    for family, kind, proto, _, sockaddr in found:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.bind((sockaddr[0], 0, *sockaddr[2:]))
        except OSError as exc:
            raise Refusal(
                key,
                f"cannot listen on {host!r} ({sockaddr[0]}): {exc.strerror}",
                "use an address of this box (`ip -brief address`), or 0.0.0.0 for all",
            ) from None
        addresses.add((int(family), str(sockaddr[0])))
    return frozenset(addresses)


def _check_camera_files(device: str, key: str, user: RunAs) -> None:
    """A camera source reading a video file, an image or a folder of images: it is there
    and ``user`` may read it (a V4L2 device or a stream may come and go: not checked)."""
    from drivers.camera import device_kind  # the camera extra is there: checked above

    kind = device_kind(device)
    if kind in ("video", "image"):
        _check_readable(Path(device), key, user, what="no such file")
    elif kind == "folder":
        _check_readable(Path(device), key, user, what="no such folder", folder=True)


def _check_readable(
    path: Path, key: str, user: RunAs, *, what: str = "", folder: bool = False
) -> None:
    """``path`` is a file (or, with ``folder``, a directory) ``user`` may read."""
    try:
        st = path.stat()
    except OSError as exc:
        reason = what if what and isinstance(exc, FileNotFoundError) else exc.strerror
        raise Refusal(key, f"{str(path)!r}: {reason}", "create it, or correct the path") from None
    if stat.S_ISDIR(st.st_mode) != folder:
        kind = "a directory" if not folder else "not a directory"
        raise Refusal(key, f"{str(path)!r} is {kind}", "name what the source should read")
    if not user.may(path, os.R_OK | (os.X_OK if folder else 0)):
        raise Refusal(
            key,
            f"{user.name} cannot read {str(path)!r} ({_describe(path)})",
            f"`sudo chgrp {user.group} {path}` and `sudo chmod g+r{'x' if folder else ''} {path}`",
        )


# -- helpers -------------------------------------------------------------------------------


def lexists(path: Path) -> bool:
    """Whether something is at ``path`` (a path we may not look at counts as there)."""
    try:
        path.lstat()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _describe(path: Path) -> str:
    """``drwxr-x--- root:scanner-agent``: what an operator needs to see to fix access."""
    try:
        st = path.stat()
    except OSError as exc:
        return exc.strerror or "cannot look at it"
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{stat.filemode(st.st_mode)} {owner}:{group}"
