"""Install, upgrade and uninstall into a temporary root (DESTDIR)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pytest

from scanner_agent.config import load_config
from scanner_agent.ops import install as inst
from scanner_agent.ops.install import install, uninstall
from scanner_agent.ops.layout import InstallError, Layout
from scanner_agent.ops.steps import Report
from scanner_agent.ops.venv import relocate_venv
from tests.support.systemd import ROOT, SYSTEMD_DIR


class Recorder:
    """A Runner that records commands and succeeds."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, "", "")


EXPECTED = [
    "etc/systemd/system/scanner-agent.service",
    "etc/udev/rules.d/60-scanner-agent.rules",
    "etc/sysusers.d/scanner-agent.conf",
    "etc/tmpfiles.d/scanner-agent.conf",
    "etc/scanner-agent/agent.toml",
    "opt/scanner-agent/README.md",
]


def test_install_into_destdir_puts_every_file_and_runs_no_system_command(tmp_path: Path) -> None:
    run = Recorder()
    report = install(Layout.create(destdir=tmp_path), venv=False, run=run)
    for rel in EXPECTED:
        assert (tmp_path / rel).is_file(), rel
    assert run.commands == []
    assert (tmp_path / EXPECTED[0]).read_text() == (
        SYSTEMD_DIR / "scanner-agent.service"
    ).read_text()
    assert (tmp_path / EXPECTED[1]).read_text() == (
        SYSTEMD_DIR / "60-scanner-agent.rules"
    ).read_text()
    assert ((tmp_path / "etc/scanner-agent/agent.toml").stat().st_mode & 0o777) == 0o640
    assert {outcome for _, outcome in report.steps} == {"created"}
    # The default config is a valid config.
    cfg = load_config(tmp_path / "etc/scanner-agent/agent.toml")
    assert cfg.outbox.path == "/var/lib/scanner-agent/outbox.db"
    assert cfg.metrics.listen == ""


def test_install_again_changes_nothing_and_never_overwrites_the_config(tmp_path: Path) -> None:
    layout = Layout.create(destdir=tmp_path)
    install(layout, venv=False, run=Recorder())
    config = tmp_path / "etc/scanner-agent/agent.toml"
    config.write_text('device_id = "dock-7"\n')
    unit = tmp_path / EXPECTED[0]
    unit.write_text("# an old version\n")
    report = install(layout, venv=False, run=Recorder())
    outcomes = dict(report.steps)
    assert outcomes["/etc/scanner-agent/agent.toml"] == "kept"
    assert outcomes["/etc/systemd/system/scanner-agent.service"] == "updated"
    assert outcomes["/etc/udev/rules.d/60-scanner-agent.rules"] == "unchanged"
    assert config.read_text() == 'device_id = "dock-7"\n'
    assert unit.read_text() == (SYSTEMD_DIR / "scanner-agent.service").read_text()


def test_prefix_and_sysconfdir_are_written_into_the_unit(tmp_path: Path) -> None:
    layout = Layout.create(destdir=tmp_path, prefix="/srv/agent", sysconfdir="/usr/local/etc")
    install(layout, venv=False, run=Recorder())
    unit = (tmp_path / "usr/local/etc/systemd/system/scanner-agent.service").read_text()
    assert (
        "ExecStart=/srv/agent/venv/bin/scanner-agent run --config "
        "/usr/local/etc/scanner-agent/agent.toml"
    ) in unit
    settings = [line for line in unit.splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "/opt/scanner-agent" in line]
    tmpfiles = (tmp_path / "usr/local/etc/tmpfiles.d/scanner-agent.conf").read_text()
    assert "/usr/local/etc/scanner-agent " in tmpfiles
    assert (tmp_path / "srv/agent/README.md").is_file()


def test_venv_is_built_on_the_given_python_with_every_role_and_compiled_for_its_final_path(
    tmp_path: Path,
) -> None:
    run = Recorder()
    layout = Layout.create(destdir=tmp_path)
    install(layout, venv=True, python="/usr/bin/python3", run=run)
    venv = str(tmp_path / "opt/scanner-agent/venv")
    assert run.commands[0] == ["/usr/bin/python3", "-m", "venv", venv]
    (pip_install,) = [c for c in run.commands if c[-1].startswith(str(ROOT))]
    assert pip_install[:4] == [f"{venv}/bin/python", "-m", "pip", "install"]
    assert pip_install[-1] == f"{ROOT}[all]"
    assert "--no-compile" in pip_install  # compiled below with the final paths
    compile_ = run.commands[-1]
    assert compile_[1:3] == ["-m", "compileall"]
    assert compile_[compile_.index("-s") + 1] == str(tmp_path)
    assert compile_[compile_.index("-p") + 1] == "/"


@pytest.mark.parametrize(("extras", "suffix"), [([""], ""), (["tui", "wedge"], "[tui,wedge]")])
def test_a_slim_install_names_its_extras(tmp_path: Path, extras: list[str], suffix: str) -> None:
    run = Recorder()
    install(Layout.create(destdir=tmp_path), venv=True, extras=extras, run=run)
    assert [c[-1] for c in run.commands if c[-1].startswith(str(ROOT))] == [f"{ROOT}{suffix}"]


@pytest.mark.parametrize("extras", [["tiu"], ["dev"], ["all", "nope"]])
def test_an_unknown_extra_is_refused_before_anything_is_built(
    tmp_path: Path, extras: list[str]
) -> None:
    run = Recorder()
    with pytest.raises(InstallError, match="INSTALL_EXTRAS"):
        install(Layout.create(destdir=tmp_path), venv=True, extras=extras, run=run)
    assert run.commands == []


def test_relocation_rewrites_the_staging_path_in_scripts_and_pyvenv_cfg_only(
    tmp_path: Path,
) -> None:
    staged = tmp_path / "root/opt/scanner-agent/venv"
    (staged / "bin").mkdir(parents=True)
    script = staged / "bin/scanner-agent"
    script.write_text(f"#!{staged}/bin/python\nimport sys\n")
    script.chmod(0o755)
    (staged / "bin/activate").write_text(f'VIRTUAL_ENV="{staged}"\n')
    (staged / "bin/python").symlink_to("/usr/bin/python3")
    (staged / "bin/blob").write_bytes(b"\x7fELF\0\0" + str(staged).encode())
    (staged / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = python3 -m venv {staged}\n")
    final = PurePosixPath("/opt/scanner-agent/venv")
    changed = relocate_venv(staged, final)
    assert sorted(p.name for p in changed) == ["activate", "pyvenv.cfg", "scanner-agent"]
    assert script.read_text().startswith("#!/opt/scanner-agent/venv/bin/python\n")
    assert script.stat().st_mode & 0o777 == 0o755
    assert str(tmp_path) not in (staged / "pyvenv.cfg").read_text()
    assert (staged / "bin/python").readlink() == Path("/usr/bin/python3")
    assert str(staged).encode() in (staged / "bin/blob").read_bytes()
    assert relocate_venv(staged, final) == []  # idempotent


def test_a_failed_venv_step_stops_the_install(tmp_path: Path) -> None:
    def fail(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(argv), 1, "", "no network")

    with pytest.raises(InstallError, match="no network"):
        install(Layout.create(destdir=tmp_path), venv=True, run=fail)


def test_live_install_activates_with_systemctl_and_udevadm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    run = Recorder()
    report = Report()
    inst._activate(Layout.create(), run, report)
    assert run.commands[0] == ["udevadm", "control", "--reload-rules"]
    assert run.commands[1][:2] == ["udevadm", "trigger"]
    assert run.commands[2:] == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "scanner-agent.service"],
        ["systemctl", "try-restart", "scanner-agent.service"],
    ]


def test_a_missing_system_tool_is_a_warning_not_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    report = Report()
    inst._activate(Layout.create(), Recorder(), report)
    assert any("udevadm not found" in w for w in report.warnings)
    assert any("systemctl not found" in w for w in report.warnings)


def test_uninstall_removes_the_install_but_keeps_config_and_outbox_data(tmp_path: Path) -> None:
    layout = Layout.create(destdir=tmp_path)
    install(layout, venv=False, run=Recorder())
    (tmp_path / "opt/scanner-agent/venv/bin").mkdir(parents=True)
    outbox = tmp_path / "var/lib/scanner-agent/outbox.db"
    outbox.parent.mkdir(parents=True)
    outbox.write_bytes(b"scans")
    run = Recorder()
    uninstall(layout, run=run)
    assert run.commands == []
    for rel in EXPECTED:
        if rel.startswith("etc/scanner-agent"):
            assert (tmp_path / rel).is_file(), rel
        else:
            assert not (tmp_path / rel).exists(), rel
    assert not (tmp_path / "opt/scanner-agent").exists()
    assert outbox.read_bytes() == b"scans"
    uninstall(layout, run=run)  # twice is fine


@pytest.mark.parametrize(
    ("prefix", "sysconfdir"), [("opt/x", "/etc"), ("/opt", "/etc"), ("/opt/a/../b", "/etc")]
)
def test_bad_install_locations_are_refused(prefix: str, sysconfdir: str) -> None:
    with pytest.raises(InstallError):
        Layout.create(prefix=prefix, sysconfdir=sysconfdir)


def test_install_needs_a_source_checkout(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="source checkout"):
        install(Layout.create(destdir=tmp_path / "root"), source=tmp_path, venv=False)


def test_make_install_and_uninstall_honour_destdir_and_prefix(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make not installed")
    args = [f"DESTDIR={tmp_path}", "PREFIX=/opt/sa", "INSTALL_FLAGS=--no-venv"]
    done = subprocess.run(
        [make, "-s", "-C", str(ROOT), "install", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "opt/sa/README.md").is_file()
    assert "/opt/sa/venv/bin/scanner-agent" in (tmp_path / EXPECTED[0]).read_text()
    done = subprocess.run(
        [make, "-s", "-C", str(ROOT), "uninstall", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / EXPECTED[0]).exists()
    assert (tmp_path / "etc/scanner-agent/agent.toml").is_file()


def test_layout_paths_are_under_destdir(tmp_path: Path) -> None:
    layout = Layout.create(destdir=tmp_path)
    assert layout.staged
    assert layout.real(PurePosixPath("/etc/x")) == tmp_path / "etc/x"
    assert not Layout.create().staged
