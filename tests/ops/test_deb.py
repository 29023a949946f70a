"""The Debian package: ``make deb``, its contents and control fields, and its life in a root.

``make deb`` runs once per test session (a venv with every role, dpkg-buildpackage, lintian:
minutes on a shared machine), compressed with ``gzip -1`` to save time.  The package is then
installed, upgraded, removed and purged in a throwaway root with ``dpkg --root`` and
``--force-script-chrootless``: dpkg runs the maintainer scripts here with ``DPKG_ROOT`` set, and
they (and debhelper's snippets) write only under it, so the machine running the tests is not
touched.  The newer version for the upgrade is the same package repacked with a higher version
(``dpkg-deb -R`` / ``-b``): the upgrade path through the maintainer scripts is the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import TOKEN
from tests.support.net import free_port
from tests.support.polling import wait_for
from tests.support.systemd import ROOT, SYSTEMD_DIR

# The suite's 300 s per test covers a fixture's setup too: ``make deb`` (venv, dpkg-buildpackage,
# lintian over ~100 MB) alone took longer on a loaded box, and pytest-timeout then ended the whole
# run mid-build.  The subprocess timeouts below bound each step; this bounds the test.
pytestmark = [pytest.mark.deb, pytest.mark.timeout(3600)]

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
NEWER = f"{VERSION}+upgrade1"


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing and os.geteuid() != 0:
        pytest.skip(
            f"{', '.join(missing)} not installed and not root: `sudo make deb-deps` installs "
            "debhelper, dpkg-dev, fakeroot, lintian and python3.11-venv"
        )


@dataclass(frozen=True)
class Built:
    deb: Path
    output: str
    """What ``make deb`` printed (lintian's verdict is the last of it)."""


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    _need("dpkg-buildpackage", "dh", "lintian")
    if os.geteuid() != 0:
        pytest.skip("the package lifecycle tests install into a root with dpkg: run as root")
    out = tmp_path_factory.mktemp("deb")
    done = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            "deb",
            f"DEB_BUILD={out / 'build'}",
            f"DEB_OUT={out / 'dist'}",
            "DEB_COMPRESS=-Zgzip -z1",
        ],
        capture_output=True,
        text=True,
        timeout=2400,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    deb = out / "dist" / f"scanner-agent_{VERSION}_{arch}.deb"
    assert deb.is_file(), output
    return Built(deb, output)


def field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_make_deb_is_lintian_clean_but_for_the_documented_overrides(built: Built) -> None:
    lines = [ln for ln in built.output.splitlines() if re.match(r"^[EWI]: ", ln)]
    assert lines == [], "\n".join(lines)
    # Every override sits in a block that starts with a comment saying why.
    explained = False
    for line in (ROOT / "debian" / "scanner-agent.lintian-overrides").read_text().splitlines():
        if not line.strip():
            explained = False
        elif line.startswith("#"):
            explained = True
        else:
            assert explained, f"override without a reason: {line}"


def test_the_control_fields(built: Built) -> None:
    assert field(built.deb, "Package") == "scanner-agent"
    assert field(built.deb, "Version") == VERSION
    depends = field(built.deb, "Depends")
    for needed in ("python3.11", "libudev1", "libc6"):
        assert needed in depends, depends
    recommends = field(built.deb, "Recommends")
    assert "libzbar0" in recommends
    assert "libusb-1.0-0" in recommends
    assert field(built.deb, "Maintainer")
    assert int(field(built.deb, "Installed-Size")) > 10_000


def test_the_package_ships_the_service_rules_entries_venv_and_a_conffile(
    built: Built, tmp_path: Path
) -> None:
    subprocess.run(["dpkg-deb", "-x", str(built.deb), str(tmp_path)], check=True)
    control = tmp_path / "DEBIAN"
    subprocess.run(["dpkg-deb", "-e", str(built.deb), str(control)], check=True)
    assert (control / "conffiles").read_text().split() == ["/etc/scanner-agent/agent.toml"]
    same = {
        "lib/systemd/system/scanner-agent.service": "scanner-agent.service",
        "lib/udev/rules.d/60-scanner-agent.rules": "60-scanner-agent.rules",
        "usr/lib/sysusers.d/scanner-agent.conf": "scanner-agent.sysusers.conf",
        "usr/lib/tmpfiles.d/scanner-agent.conf": "scanner-agent.tmpfiles.conf",
        "etc/scanner-agent/agent.toml": "agent.toml",
    }
    for shipped, source in same.items():
        assert (tmp_path / shipped).read_text() == (SYSTEMD_DIR / source).read_text(), shipped
    assert os.readlink(tmp_path / "usr/bin/scanner-agent") == (
        "/opt/scanner-agent/venv/bin/scanner-agent"
    )
    script = tmp_path / "opt/scanner-agent/venv/bin/scanner-agent"
    assert script.read_text().startswith("#!/opt/scanner-agent/venv/bin/python\n")
    # Debian's python3.11, not /usr/bin/python3: a new default python3 leaves the venv working.
    python = tmp_path / "opt/scanner-agent/venv/bin/python"
    assert python.resolve() == Path("/usr/bin/python3.11").resolve()
    assert os.readlink(python.parent / "python3.11") == "/usr/bin/python3.11"
    assert not list(tmp_path.rglob("__pycache__"))  # compiled by postinst, not shipped
    assert not list(tmp_path.rglob("INSTALLED"))  # dpkg owns the files, not make uninstall
    docs = tmp_path / "usr/share/doc/scanner-agent"
    assert {p.name for p in docs.iterdir()} >= {"README.md.gz", "operations.md.gz", "copyright"}
    assert (
        '"method": "debian package"'
        in (tmp_path / "opt/scanner-agent/venv/scanner-agent-install.json").read_text()
    )


def test_maintainer_scripts_create_the_user_first_and_restart_only_on_upgrade(
    built: Built, tmp_path: Path
) -> None:
    subprocess.run(["dpkg-deb", "-e", str(built.deb), str(tmp_path)], check=True)
    postinst = (tmp_path / "postinst").read_text()
    assert postinst.index("systemd-sysusers") < postinst.index("systemd-tmpfiles")
    assert "deb-systemd-helper enable" in postinst
    # restartnostart: (try-)restart when $2 (the old version) is set, nothing on a first install
    assert re.search(r'if \[ -n "\$2" \]; then\s+deb-systemd-invoke try-restart', postinst)
    assert "deb-systemd-invoke start" not in postinst
    assert "_dh_action=start" not in postinst
    preinst = (tmp_path / "preinst").read_text() if (tmp_path / "preinst").exists() else ""
    assert "deb-systemd-invoke stop" not in preinst  # not stopped for an upgrade, restarted
    assert "udevadm control --reload-rules" in postinst
    prerm = (tmp_path / "prerm").read_text()
    assert "queue stats --json" in prerm


# -- the life of the package in a throwaway root ----------------------------------------------


class Root:
    """A directory dpkg installs into (``--root``), maintainer scripts run chrootless."""

    def __init__(self, path: Path) -> None:
        self.path = path
        admin = path / "var/lib/dpkg"
        (admin / "info").mkdir(parents=True)
        (admin / "updates").mkdir()
        (admin / "available").touch()
        # The host's package list, so the package's dependencies count as installed: the
        # maintainer scripts run the host's tools (systemd-sysusers, python3.11...).
        shutil.copy("/var/lib/dpkg/status", admin / "status")
        (path / "etc").mkdir()

    def dpkg(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["dpkg", f"--root={self.path}", "--force-script-chrootless", *args],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def status(self) -> str:
        done = subprocess.run(
            [
                "dpkg-query",
                f"--admindir={self.path / 'var/lib/dpkg'}",
                "-W",
                "-f=${db:Status-Abbrev} ${Version}",
                "scanner-agent",
            ],
            capture_output=True,
            text=True,
        )
        return " ".join(done.stdout.split()) if done.returncode == 0 else "not known"

    def __truediv__(self, rel: str) -> Path:
        return self.path / rel.lstrip("/")

    @property
    def python(self) -> Path:
        return self / "opt/scanner-agent/venv/bin/python"

    def agent(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed agent (its scripts name /opt/scanner-agent: the root's interpreter)."""
        return subprocess.run(
            [str(self.python), "-m", "scanner_agent", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        )


def repack(deb: Path, version: str, out: Path) -> Path:
    tree = out / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN/control"
    control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {version}", control.read_text()))
    target = out / f"scanner-agent_{version}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "-b", str(tree), str(target)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree)
    return target


def site_config(root: Root, *, port: int, url: str) -> None:
    """What an administrator writes into the installed conffile."""
    token = root / "etc/scanner-agent/token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o640)
    (root / "etc/scanner-agent/agent.toml").write_text(
        f"""# this site's configuration
device_id = "packaged-dock"
[outbox]
path = "{root / "var/lib/scanner-agent/outbox.db"}"
min_free_mb = 0
[sync]
url = "{url}"
token_file = "{token}"
idle_poll_s = 0.05
backoff_initial_s = 0.05
backoff_max_s = 0.2
[control]
socket = ""
[[source]]
type = "tcp"
listen = "127.0.0.1:{port}"
ack = true
"""
    )


@contextlib.contextmanager
def running(root: Root) -> Iterator[subprocess.Popen[bytes]]:
    """The installed agent running the site's config, until the block ends (SIGTERM).

    Its log goes to ``agent.log`` beside the root, for the reader of a failure.
    """
    with (root.path.parent / "agent.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                str(root.python),
                "-m",
                "scanner_agent",
                "run",
                "--config",
                str(root / "etc/scanner-agent/agent.toml"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd="/",
            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        )
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def scan(port: int, codes: list[str]) -> None:
    """Send ``codes`` to the agent's TCP source and wait for every ACK."""

    def connect() -> socket.socket | None:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            return None

    sock: socket.socket | None = None

    def connected() -> bool:
        nonlocal sock
        sock = connect()
        return sock is not None

    wait_for(connected, within=60.0, what="the agent's TCP source")
    assert sock is not None
    with sock:
        sock.sendall(b"".join(c.encode() + b"\r\n" for c in codes))
        replies = b""
        while replies.count(b"\n") < len(codes):
            chunk = sock.recv(65536)
            assert chunk, replies
            replies += chunk
    assert all(line.startswith(b"ACK") for line in replies.splitlines()), replies


def backlog(root: Root) -> int:
    done = root.agent(
        "queue", "stats", "--json", "--outbox", str(root / "var/lib/scanner-agent/outbox.db")
    )
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["backlog"])


def test_install_upgrade_remove_and_purge_in_a_throwaway_root(built: Built, tmp_path: Path) -> None:
    root = Root(tmp_path / "root")
    host_passwd = Path("/etc/passwd").read_bytes()
    newer = repack(built.deb, NEWER, tmp_path)

    # -- install: user, directories, conffile, enabled (not started: nothing runs here) ----
    done = root.dpkg("-i", str(built.deb))
    assert "installed and enabled, not started" in done.stdout
    assert root.status() == f"ii {VERSION}"
    passwd = (root / "etc/passwd").read_text()
    uid = int(re.search(r"^scanner-agent:x:(\d+):", passwd, re.M).group(1))  # type: ignore[union-attr]
    state = (root / "var/lib/scanner-agent").stat()
    assert (state.st_uid, state.st_mode & 0o777) == (uid, 0o750)
    conf = (root / "etc/scanner-agent/agent.toml").stat()
    assert conf.st_mode & 0o777 == 0o640
    wants = root / "etc/systemd/system/multi-user.target.wants/scanner-agent.service"
    assert os.readlink(wants) == "/lib/systemd/system/scanner-agent.service"
    compiled = list((root / "opt/scanner-agent/venv/lib").rglob("doctor.cpython-311.pyc"))
    assert compiled, "postinst compiles the venv"
    assert str(root.path).encode() not in compiled[0].read_bytes()  # final paths in it
    assert root.agent("--version").stdout.strip() == f"scanner-agent {VERSION}"

    # -- an outbox holding scans the trace service has not had -----------------------------
    port = free_port()
    site_config(root, port=port, url="http://127.0.0.1:9")
    codes = [f"8{i:019d}" for i in range(1, 26)]
    with running(root):
        scan(port, codes)
    assert backlog(root) == len(codes)

    # -- upgrade: the admin's config kept, the scans still there and then delivered --------
    edited = (root / "etc/scanner-agent/agent.toml").read_text()
    done = root.dpkg("-i", str(newer))
    assert "not started" not in done.stdout  # an upgrade: restarted (when systemd runs)
    assert root.status() == f"ii {NEWER}"
    assert (root / "etc/scanner-agent/agent.toml").read_text() == edited
    assert backlog(root) == len(codes)
    with TraceServerThread(tmp_path / "trace.db", TOKEN) as trace:
        site_config(root, port=port, url=trace.url)
        with running(root):
            wait_for(
                lambda: backlog(root) == 0,
                within=60.0,
                what="the upgraded agent to deliver the backlog",
            )
        events = trace.store.events_after(0, 100)[0]
        got = {e["code"] for e in events}
    assert set(codes) <= got

    # -- remove: program gone, outbox and config kept, the undelivered count said ----------
    more = [f"8{i:019d}" for i in range(101, 108)]
    site_config(root, port=port, url="http://127.0.0.1:9")
    with running(root):
        scan(port, more)
    done = root.dpkg("-r", "scanner-agent")
    assert f"still holds {len(more)} scans not yet delivered" in done.stderr
    assert root.status().startswith("rc ")
    assert not (root / "opt/scanner-agent/venv").exists()
    assert not (root / "usr/bin/scanner-agent").exists()
    assert (root / "var/lib/scanner-agent/outbox.db").is_file()
    assert (root / "etc/scanner-agent/agent.toml").is_file()

    # -- purge: said again, then both directories deleted -----------------------------------
    done = root.dpkg("--purge", "scanner-agent")
    assert f"which still holds {len(more)} scans" in done.stderr
    assert not (root / "var/lib/scanner-agent").exists()
    assert not (root / "etc/scanner-agent").exists()
    assert not wants.exists()
    assert root.status() == "not known" or root.status().startswith("pn")
    assert Path("/etc/passwd").read_bytes() == host_passwd  # the host was not touched
