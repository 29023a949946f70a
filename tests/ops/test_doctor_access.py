"""``doctor`` on paths it may not read, and hints that fit the failure (issue 15 §4).

Run as an unprivileged user (``nobody`` through ``setpriv`` when the suite runs
as root), ``doctor`` printed a ``PermissionError`` traceback for an outbox
directory it could not enter, and told a config it could not read to "fix the
key named above".  A world-readable token was told to "create the token file".
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scanner_agent.ops.doctor import Options, Report, Status, run_doctor
from tests.support.users import as_user

AGENT = [sys.executable, "-m", "scanner_agent"]


@pytest.fixture
def site() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="doctor-access-"))
    root.chmod(0o755)
    (root / "data").mkdir(mode=0o755)
    token = root / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)
    (root / "agent.toml").write_text(
        f"""
device_id = "doctor-dock"
[outbox]
path = "{root / "data" / "outbox.db"}"
min_free_mb = 0
[sync]
url = "http://127.0.0.1:9"
token_file = "{token}"
"""
    )
    (root / "agent.toml").chmod(0o644)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def doctor_as_nobody(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to set files another user may not read")
    return subprocess.run(
        [*as_user(), *AGENT, "doctor", "--config", str(config), "--sysfs", "/nonexistent", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_config_doctor_may_not_read_says_how_to_get_access(site: Path) -> None:
    (site / "agent.toml").chmod(0o600)
    done = doctor_as_nobody(site / "agent.toml", "--json")
    assert "Traceback" not in done.stderr
    (check,) = json.loads(done.stdout)["checks"]
    assert check["status"] == "fail"
    assert "Permission denied" in check["detail"]
    assert "sudo scanner-agent doctor" in check["hint"]
    assert "fix the key" not in check["hint"]


def test_an_outbox_directory_doctor_may_not_enter_is_named_not_a_traceback(site: Path) -> None:
    (site / "data").chmod(0o700)
    done = doctor_as_nobody(site / "agent.toml")
    assert "Traceback" not in done.stdout + done.stderr
    outbox = next(line for line in done.stdout.splitlines() if "] outbox" in line)
    assert f"cannot enter '{site / 'data'}'" in outbox
    assert "sudo install -d" in outbox


def test_a_token_only_the_service_may_read_names_the_group_to_join(site: Path) -> None:
    group = grp.getgrgid(1)  # 'daemon' on Debian: a group nobody is not in
    os.chown(site / "token", 0, group.gr_gid)
    (site / "token").chmod(0o640)
    done = doctor_as_nobody(site / "agent.toml", "--user", "root", "--json")
    assert "Traceback" not in done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    token = checks["token"]
    assert token["status"] == "warn", token
    assert "nobody may not" in token["detail"]
    assert f"join group {group.gr_name}" in token["hint"]
    assert "sudo scanner-agent doctor" in token["hint"]


def _doctor(tmp_path: Path, token_line: str) -> Report:
    config = tmp_path / "agent.toml"
    (tmp_path / "data").mkdir(exist_ok=True)
    config.write_text(
        f"""
[outbox]
path = "{tmp_path / "data" / "outbox.db"}"
min_free_mb = 0
[sync]
url = "http://127.0.0.1:9"
{token_line}
"""
    )
    (tmp_path / "sys").mkdir(exist_ok=True)
    return run_doctor(
        Options(
            config_path=config,
            service_user="root",
            sysfs=tmp_path / "sys",
            comports=list,
            profile_dirs=(tmp_path / "none",),
        )
    )


@pytest.mark.parametrize(
    ("content", "mode", "hint", "not_hint"),
    [
        ("tok-123456\n", 0o644, "chmod o-rwx", "create"),
        ("PART1-abcdef\nPART2-ghijkl\n", 0o600, "one line of printable ASCII", "chmod"),
        ("", 0o600, "one line of printable ASCII", "chmod"),
        (None, 0o600, "create it", "chmod"),
    ],
)
def test_each_credential_failure_gets_its_own_hint(
    tmp_path: Path, content: str | None, mode: int, hint: str, not_hint: str
) -> None:
    token = tmp_path / "token"
    if content is not None:
        token.write_text(content)
        token.chmod(mode)
    check = _doctor(tmp_path, f'token_file = "{token}"').by_name("token")
    assert check.status is Status.FAIL
    assert hint in check.hint
    assert not_hint not in check.hint
    assert "PART" not in check.detail + check.hint


def test_an_unset_token_variable_is_told_where_the_service_gets_it(tmp_path: Path) -> None:
    check = _doctor(tmp_path, 'token_env = "DOCTOR_TEST_NO_SUCH_TOKEN"').by_name("token")
    assert check.status is Status.FAIL
    assert "Environment=" in check.hint


@pytest.mark.parametrize("kind", ["directory", "named pipe"])
def test_a_token_path_that_is_not_a_file_is_named_with_a_hint_that_fits(
    tmp_path: Path, kind: str
) -> None:
    """Neither "the check itself failed" nor a wait for a writer: the key names no file."""
    token = tmp_path / "token"
    if kind == "directory":
        token.mkdir(mode=0o700)
    else:
        os.mkfifo(token, 0o600)
    report = _doctor(tmp_path, f'token_file = "{token}"')
    check = report.by_name("token")
    assert check.status is Status.FAIL
    assert f"is not a regular file (a {kind})" in check.detail
    assert "point the key at the file holding the secret" in check.hint
    assert all("the check itself failed" not in c.detail for c in report.checks)


def _doctor_on(config: Path, tmp_path: Path) -> Report:
    (tmp_path / "sys").mkdir(exist_ok=True)
    return run_doctor(
        Options(
            config_path=config,
            service_user="root",
            sysfs=tmp_path / "sys",
            comports=list,
            profile_dirs=(tmp_path / "none",),
        )
    )


@pytest.mark.parametrize(
    ("make", "hint", "detail"),
    [
        (lambda p: p.mkdir(), "-c names a directory", "Is a directory"),
        (lambda p: p.write_text("[sync\n"), "TOML syntax at the line", "as TOML"),
        (lambda p: p.write_bytes(b"\xff\xfe[sync]\n"), "save it as UTF-8", "as TOML"),
        (lambda p: p.write_text('[sync]\nurl = "http://[::1"\n'), "fix the key named above", "url"),
    ],
)
def test_a_config_that_does_not_load_gets_the_hint_of_its_own_failure(
    tmp_path: Path, make: Callable[[Path], object], hint: str, detail: str
) -> None:
    """Not "fix the key named above" for a file that names no key (issue 15 §4)."""
    config = tmp_path / "agent.toml"
    make(config)
    check = _doctor_on(config, tmp_path).by_name("config")
    assert check.status is Status.FAIL
    assert detail in check.detail
    assert hint in check.hint


def test_an_outbox_that_is_no_database_is_not_told_to_check_its_owner(tmp_path: Path) -> None:
    """``run`` moves such a file aside and starts afresh; doctor says so instead of blaming
    the file's owner and mode."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "outbox.db").write_bytes(b"not sqlite " * 400)
    (tmp_path / "data" / "outbox.db").chmod(0o600)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[outbox]\npath = "{tmp_path / "data" / "outbox.db"}"\nmin_free_mb = 0\n'
        '[sync]\nurl = "http://127.0.0.1:9"\n'
    )
    check = _doctor_on(config, tmp_path).by_name("outbox")
    assert check.status is Status.FAIL
    assert "not a database" in check.detail
    assert "owner and mode" not in check.hint
    assert "moves it aside" in check.hint


@pytest.mark.skipif(os.geteuid() != 0, reason="checks for another user need root")
def test_a_token_the_checked_user_cannot_read_names_that_users_group_as_check_config_does(
    site: Path,
) -> None:
    # doctor checked for `nobody` (the service user here) but told to chgrp the file to
    # `scanner-agent`, a group this box may not even have; check-config names nobody's group.
    group = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    os.chown(site / "token", 0, 0)
    (site / "token").chmod(0o600)
    done = subprocess.run(
        [*AGENT, "doctor", "--config", str(site / "agent.toml"), "--user", "nobody", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    token = {c["name"]: c for c in json.loads(done.stdout)["checks"]}["token"]
    assert token["status"] == "fail", token
    assert f"`sudo chgrp {group} {site / 'token'}`" in token["hint"], token
    refused = subprocess.run(
        [*AGENT, "check-config", "--config", str(site / "agent.toml"), "--user", "nobody"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert f"`sudo chgrp {group} {site / 'token'}`" in refused.stderr, refused.stderr
