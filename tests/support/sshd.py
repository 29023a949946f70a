"""A real OpenSSH server on loopback, with a throwaway host key and user key, for the tests.

``docs/control.md`` tells a clerk to reach a remote dock by forwarding its
control socket over SSH (``ssh -N -L local.sock:/run/scanner-agent/control.sock``).
This runs Debian's ``sshd`` on a free port of 127.0.0.1 in a private directory
(keys made by ``ssh-keygen`` there; only public-key logins, for the user the
tests run as), so the documented line itself can be run against it.

Without ``sshd`` the tests that need it fail and say how to get it: ``make
deps`` installs Debian's ``openssh-server`` (as it does PostgreSQL), so a
missing server is a broken machine, not a reason to skip the test.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.support.net import free_port
from tests.support.polling import wait_for

__all__ = ["MISSING", "SshServer", "find_sshd"]

MISSING = (
    "OpenSSH server (sshd) not found: install Debian's `openssh-server` package (`make deps` "
    "does it as root; or `sudo apt-get install openssh-server`)"
)
"""What an SSH test says when it cannot start a server."""

_PRIVSEP = Path("/run/sshd")
"""Debian's sshd, started as root, refuses to run without its privilege separation directory
(made by the service unit on a real machine, absent in a container)."""


def find_sshd() -> Path | None:
    """Debian's ``sshd`` (it must be started by its absolute path), if installed."""
    found = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/usr/local/sbin")
    return Path(found) if found else None


def _wait(
    done: Callable[[], bool], within: float, what: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    """Poll ``done()`` until true; fail with ``proc``'s log if it exits first."""

    def ready() -> bool:
        if done():
            return True
        if proc.poll() is not None:
            out = log.read_text(errors="replace")
            raise AssertionError(f"{what}: exited {proc.returncode}: {out}")
        return False

    wait_for(ready, within, f"{what} to be ready")


class SshServer:
    """``sshd`` on 127.0.0.1 in ``root``: public-key logins of this user with its own key."""

    def __init__(self, sshd: Path, root: Path) -> None:
        self.root = root
        self.user = getpass.getuser()
        self.port = free_port()
        self.user_key = root / "user_key"
        self.known_hosts = root / "known_hosts"
        self._sshd = sshd
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Make the keys and the config, start the server, wait until it takes connections."""
        root = self.root
        for name in ("host_key", "user_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)],
                check=True,
            )
        authorized = root / "authorized_keys"
        authorized.write_text((root / "user_key.pub").read_text())
        authorized.chmod(0o600)
        host_pub = (root / "host_key.pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {' '.join(host_pub)}\n")
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {root / 'host_key'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PidFile none",
                    "UsePAM no",
                    "StrictModes no",  # the test's temporary directory is not root's own
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",  # CI runs the tests as root
                    "PermitTTY no",
                    "X11Forwarding no",
                    "AllowTcpForwarding local",
                    "AllowStreamLocalForwarding local",  # what -L to a UNIX socket needs
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        if os.geteuid() == 0 and not _PRIVSEP.is_dir():
            _PRIVSEP.mkdir(mode=0o755, parents=True, exist_ok=True)
        log = root / "sshd.log"
        with log.open("wb") as out:  # a file, not a pipe nobody reads: it never blocks sshd
            self._proc = subprocess.Popen(
                [str(self._sshd), "-D", "-e", "-f", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=out,
            )

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        _wait(listening, 15, "sshd", self._proc, log)

    def client_options(self) -> list[str]:
        """What a test adds to a clerk's ``ssh`` line: this server's port, the throwaway key,
        its host key as the only known one, no prompts and no user config."""
        return [
            "-p",
            str(self.port),
            "-i",
            str(self.user_key),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-F",
            "/dev/null",
        ]

    def forward(self, argv: list[str], local: Path) -> subprocess.Popen[bytes]:
        """Run ``argv`` (an ``ssh -N -L local:remote ...`` line) and wait for ``local``."""
        log = self.root / f"ssh-{local.name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=out)

        def accepting() -> bool:
            if not local.exists():
                return False
            with socket.socket(socket.AF_UNIX) as s:
                return s.connect_ex(str(local)) == 0

        try:
            _wait(accepting, 15, f"ssh -L {local}", proc, log)
        except AssertionError:
            proc.kill()
            proc.wait()
            raise
        return proc

    def stop(self) -> None:
        """Stop the server (its connections end with it)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
