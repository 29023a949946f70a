"""One install, every role: ``make install`` into a throwaway root, then each role run from there.

The root gets a real venv (``pip install <checkout>[all]`` on the system
Python, relocated to ``/opt/scanner-agent/venv``), built once per test
session.  Each role runs from that venv's interpreter as a subprocess, the
way an operator would: ``tui`` on a real pty, ``decode`` on a generated
image, ``check-config`` on a wedge source, ``doctor``.  A second, slim install
(``INSTALL_EXTRAS=``) shows what a box without the extras is told.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from scanner_agent.cli.output import EXIT_FAILED, EXIT_PROBLEMS, EXIT_USAGE
from tests.support.systemd import ROOT

# The suite's 300 s per test covers the session fixture's ``make install`` (a pip install of every
# role, up to 900 s on a loaded box, bounded below); this bounds the test that builds it.
pytestmark = [pytest.mark.install, pytest.mark.timeout(1800)]

PREFIX = "opt/scanner-agent"


def make_install(root: Path, *extra_args: str) -> Path:
    """``make install DESTDIR=root``; the installed venv's interpreter."""
    make = shutil.which("make")
    system_python = Path("/usr/bin/python3")
    if make is None or not system_python.exists():
        pytest.skip("make and /usr/bin/python3 (Debian's python3, python3-venv) are needed")
    done = subprocess.run(
        [make, "-s", "-C", str(ROOT), "install", f"DESTDIR={root}", *extra_args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    python = root / PREFIX / "venv/bin/python"
    assert python.exists(), done.stdout
    return python


@pytest.fixture(scope="session")
def full_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("installed-full")
    return root, make_install(root)


@pytest.fixture(scope="session")
def slim_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("installed-slim")
    return root, make_install(root, "INSTALL_EXTRAS=")


def agent(
    python: Path, *args: str, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """``scanner-agent ARGS`` as the installed venv runs it (its scripts name the final path,
    /opt/scanner-agent, so the interpreter in the root runs the package's ``__main__``)."""
    done = subprocess.run(
        [str(python), "-m", "scanner_agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",  # never this checkout: the root's own copy must be the one imported
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def write_config(directory: Path, sources: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "agent.toml"
    path.write_text(
        f"""
device_id = "installed-dock"
[outbox]
path = "{directory / "outbox.db"}"
min_free_mb = 0
[sync]
enabled = false
[control]
socket = "{directory / "control.sock"}"
{sources}
"""
    )
    return path


WEDGE = '[[source]]\ntype = "wedge"\nprofile = "opticon-nlv-1001"\n'


def test_the_installed_tree_names_only_its_final_paths(full_root: tuple[Path, Path]) -> None:
    root, _ = full_root
    staged = str(root).encode()
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and staged in p.read_bytes()
    ]
    assert offenders == []
    script = root / PREFIX / "venv/bin/scanner-agent"
    assert script.read_text().startswith("#!/opt/scanner-agent/venv/bin/python\n")
    info = json.loads((root / PREFIX / "venv/scanner-agent-install.json").read_text())
    assert info == {"method": "make install", "extras": ["all"], "source": str(ROOT)}


def test_doctor_finds_every_role_in_a_full_install(
    full_root: tuple[Path, Path], tmp_path: Path
) -> None:
    _, python = full_root
    config = write_config(tmp_path, WEDGE)
    done = agent(python, "doctor", "--config", str(config), "--json")
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    for role in ("daemon", "tui", "camera", "wedge", "hotplug", "usb"):
        assert checks[f"role {role}"]["status"] == "ok", checks[f"role {role}"]
    assert checks["driver source[0]"]["status"] == "ok", checks["driver source[0]"]


def test_check_config_passes_a_wedge_source_in_a_full_install(
    full_root: tuple[Path, Path], tmp_path: Path
) -> None:
    _, python = full_root
    done = agent(python, "check-config", "--config", str(write_config(tmp_path, WEDGE)))
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_decode_reads_an_image_in_a_full_install(
    full_root: tuple[Path, Path], tmp_path: Path
) -> None:
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    zxingcpp = pytest.importorskip("zxingcpp")
    hri = "(01)06901234567892(17)281231(10)B42(21)0000000001"
    symbol = zxingcpp.create_barcode(hri, zxingcpp.BarcodeFormat.DataMatrix, gs1=True)
    image = tmp_path / "carton.png"
    assert cv2.imwrite(
        str(image), np.pad(np.asarray(symbol.to_image(scale=6)), 40, constant_values=255)
    )
    done = agent(full_root[1], "decode", str(image), check=True)
    (line,) = [json.loads(x) for x in done.stdout.splitlines()]
    assert line["format"] == "DataMatrix"
    assert line["parse"]["scheme"] == "gs1"
    assert line["parse"]["gtin"] == "06901234567892"
    assert line["parse"]["valid"] is True


def run_on_pty(
    argv: Sequence[str], until: bytes, keys: bytes, within: float = 180
) -> tuple[int, bytes]:
    """Run ``argv`` on a new 80x24 pty; once ``until`` shows, type ``keys``; its exit status."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.Popen(
        list(argv),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd="/",
        env={**env, "TERM": "xterm-256color"},
        start_new_session=True,
    )
    os.close(slave)
    screen = b""
    typed = False
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    screen += os.read(master, 65536)
                except OSError:  # the child closed the pty
                    break
            if not typed and until in _text(screen):
                os.write(master, keys)
                typed = True
        status = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert typed, _text(screen)[-2000:]
    return status, screen


_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")


def _text(screen: bytes) -> bytes:
    """What the terminal shows, roughly: the bytes without escape sequences (a redraw may put
    cursor moves and colours between the letters of one line)."""
    return _ESCAPES.sub(b"", screen)


def test_the_tui_starts_and_quits_in_a_full_install(
    full_root: tuple[Path, Path], tmp_path: Path
) -> None:
    _, python = full_root
    config = write_config(tmp_path)
    status, screen = run_on_pty(
        [str(python), "-m", "scanner_agent", "tui", "--embedded", "--config", str(config)],
        until=b"installed-dock",  # the header names the device once the agent answered
        keys=b"q",
    )
    assert status == 0, _text(screen)[-2000:]


def test_a_slim_install_is_told_which_roles_it_lacks_and_how_to_add_them(
    slim_root: tuple[Path, Path], tmp_path: Path
) -> None:
    _, python = slim_root
    config = write_config(tmp_path, WEDGE)
    done = agent(python, "doctor", "--config", str(config), "--json")
    assert done.returncode == EXIT_PROBLEMS, done.stdout  # the wedge source cannot run
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["role daemon"]["status"] == "ok"
    assert checks["role wedge"]["status"] == "fail"  # a source needs it
    for role in ("tui", "camera", "hotplug", "usb"):
        check = checks[f"role {role}"]
        assert check["status"] == "skip", check  # left out on purpose: not a warning
        assert "left out of this install" in check["detail"]
    driver = checks["driver source[0]"]
    assert driver["status"] == "fail"
    assert "python-evdev" in driver["detail"] or "evdev" in driver["detail"]
    for check in checks.values():
        # A source install is never sent to a package index.
        assert "pip install" not in check["hint"], check
    assert "make install" in driver["hint"]
    assert str(ROOT) in driver["hint"]


def test_a_slim_install_refuses_a_wedge_source_before_run_does(
    slim_root: tuple[Path, Path], tmp_path: Path
) -> None:
    _, python = slim_root
    config = write_config(tmp_path, WEDGE)
    checked = agent(python, "check-config", "--config", str(config))
    assert checked.returncode == EXIT_USAGE
    assert "evdev" in checked.stderr
    assert "make install" in checked.stderr
    assert "pip install" not in checked.stderr
    ran = agent(python, "run", "--config", str(config), timeout=60)
    assert ran.returncode == EXIT_USAGE
    assert "evdev" in ran.stderr
    assert ran.stderr.count("Failed to start source") <= 1, ran.stderr
    assert not (tmp_path / "outbox.db").exists()  # refused before anything was created


def test_a_slim_install_says_how_to_get_the_tui(slim_root: tuple[Path, Path]) -> None:
    _, python = slim_root
    done = agent(python, "tui")
    assert done.returncode == EXIT_FAILED
    assert "make install" in done.stderr
    assert "pip install" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_the_installer_refuses_an_unknown_extra(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scanner_agent.cli.ops",
            "install",
            "--destdir",
            str(tmp_path),
            "--extras",
            "tui,camra",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == EXIT_FAILED
    assert "camra" in done.stderr
    assert not (tmp_path / PREFIX / "venv").exists()


SERVE_OPENAPI = """
import sys, httpx
from scanner_agent.traceserver import TraceServerThread
with TraceServerThread(sys.argv[1], "installed-token") as server:
    sys.stdout.write(httpx.get(server.url + "/openapi.json", timeout=30).text)
"""


def test_the_installed_trace_service_serves_its_openapi_document(
    full_root: tuple[Path, Path], tmp_path: Path
) -> None:
    """docs/trace-api.openapi.yaml travels in the package (a file, not the checkout's link)."""
    import yaml

    root, python = full_root
    shipped = list(root.rglob("scanner_agent/traceserver/trace-api.openapi.yaml"))
    assert len(shipped) == 1
    assert not shipped[0].is_symlink()
    done = subprocess.run(
        [str(python), "-c", SERVE_OPENAPI, str(tmp_path / "trace.db")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )
    assert done.returncode == 0, done.stderr
    checkout = yaml.safe_load((ROOT / "docs/trace-api.openapi.yaml").read_text(encoding="utf-8"))
    assert json.loads(done.stdout) == checkout
